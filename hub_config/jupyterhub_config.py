# JupyterHub configuration for the AI course platform. Kept thin on purpose: the settings and the
# code that applies them live in the `grader.hub` package, where they are tested. Override with
# AICOURSE_* environment variables (see README); files in jupyterhub_config.d/ run last, in order.
from pathlib import Path

from grader.hub.config import apply_settings
from grader.hub.settings import settings_from_env

c = get_config()  # noqa: F821
apply_settings(c, settings_from_env())

for extra_config in sorted((Path(__file__).parent / "jupyterhub_config.d").glob("*.py")):
    load_subconfig(str(extra_config))  # noqa: F821
