"""nbgrader's settings in a user's pod on Kubernetes, read from the pod's environment.

On one machine the hub writes ``~/.jupyter/nbgrader_config.py`` into each home before the server
starts (:func:`grader.hub.spawn.homes.student_config_text`). On a cluster nothing prepares the home: the
single-user images carry ``hub_config/images/singleuser/nbgrader_config.py`` in a folder on
Jupyter's config path, which calls :func:`apply_pod_nbgrader_config`. The exchange's address comes
from ``$GRADER_EXCHANGE_URL``, which the chart's values put in every user's pod
(``singleuser.extraEnv``, rendered by :mod:`grader.hub.kubernetes.values`), and the user from
``$JUPYTERHUB_USER``, which the hub sets.

Kept free of hub-only imports: the single-user images have nbgrader and ``grader``, not the hub's
authenticators.
"""

from __future__ import annotations

import os
from typing import Mapping

from grader.exchange.plugins.config import PLUGIN_CLASSES

# HttpExchange reads the same variable as its default (grader.exchange.plugins.base.URL_ENV).
EXCHANGE_URL_ENV = "GRADER_EXCHANGE_URL"


def apply_pod_nbgrader_config(c, environ: Mapping[str, str] = os.environ) -> None:
    """Set on nbgrader's config ``c`` what the one-machine hub writes into a student's home."""
    c.Authenticator.plugin_class = "nbgrader.auth.JupyterHubAuthPlugin"
    # Fetched assignments go to <course>/<assignment>, so two courses' "a1" never collide.
    c.Exchange.path_includes_course = True
    if environ.get("JUPYTERHUB_USER"):
        # Only names local folders: the exchange service files work under the hub's name for the caller.
        c.CourseDirectory.student_id = environ["JUPYTERHUB_USER"]
    url = environ.get(EXCHANGE_URL_ENV, "")
    if url:
        for trait, plugin in PLUGIN_CLASSES.items():
            setattr(c.ExchangeFactory, trait, plugin)
        c.HttpExchange.service_url = url
