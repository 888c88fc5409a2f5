"""What a user's server runs and which Jupyter configuration it reads (one machine and Kubernetes)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from grader.resources import JUPYTER_CONFIG_DIRS, REPO_ROOT

# Jupyter configuration folders for servers, by kind of user (package data, see
# grader/hub/data/jupyter/README.md).
STAFF_JUPYTER_CONFIG = JUPYTER_CONFIG_DIRS / "staff"
STUDENT_JUPYTER_CONFIG = JUPYTER_CONFIG_DIRS / "student"


def is_course_staff(user) -> bool:
    """An instructor or grader of some course: in a ``formgrade-<course>`` group."""
    return any(group.name.startswith("formgrade-") for group in user.groups)


def jupyter_config_path_for(spawner) -> str:
    """The ``JUPYTER_CONFIG_PATH`` of a user's server: students get a Lab without instructor tools."""
    return str(STAFF_JUPYTER_CONFIG if is_course_staff(spawner.user) else STUDENT_JUPYTER_CONFIG)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def singleuser_command(*, as_root: bool = False, executable: str | None = None) -> list[str]:
    """The command of a Jupyter server: users' servers, and each course's formgrader."""
    # The same interpreter as the hub (or its copy users can run: grader.hub.spawn.users_python),
    # so kernels see the platform's torch and tensorflow.
    # grader.hub.spawn.singleuser: jupyterhub.singleuser without two eager imports that cost most of
    # a start's CPU (benchmarks/server_startup.py).
    command = [executable or sys.executable, "-m", "grader.hub.spawn.singleuser"]
    # Only where a server really runs as root: the courses' formgraders (hub services), and a
    # throw-away test hub in demo mode (spawner.allow_root_demo). Users' servers never, in secure mode.
    if as_root and _running_as_root():
        command.append("--allow-root")
    return command



# --- the platform's Jupyter server extension --------------------------------------------------
# Enabled in both configuration folders (``jupyter_server_config.d/platform-*.json``), so in every
# user's server and every course's formgrader service. The server loads extensions sorted by name,
# so these handlers are added before nbgrader's and answer first where both match a path.
# Tornado and Jupyter are imported inside the functions: the hub imports this module too.

# The pinned npm package (package.json), installed by `make setup`; absent from a wheel install.
MATHJAX_DIR = REPO_ROOT / "node_modules" / "mathjax"
# JupyterHub sets it in a service's environment (the formgraders), never in a user's server's.
SERVICE_NAME_ENV = "JUPYTERHUB_SERVICE_NAME"
STAFF_GROUP_PREFIX = "formgrade-"


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp) -> None:
    base_url = serverapp.web_app.settings["base_url"]
    handlers = mathjax_handlers(base_url)
    if os.environ.get(SERVICE_NAME_ENV):
        # A course's formgrader (grader.hub.services.formgrader).
        from grader.hub.services.formgrader import formgrader_service_handlers, use_local_mathjax

        # Its root_dir is the course directory (the service's --ServerApp.root_dir).
        handlers += formgrader_service_handlers(base_url, serverapp.log, course_dir=Path(serverapp.root_dir))
        use_local_mathjax(serverapp.log)
    else:
        handlers += formgrader_redirect_handlers(base_url)
    serverapp.web_app.add_handlers(".*$", handlers)


def mathjax_handlers(base_url: str) -> list:
    """``<base>aicourse/mathjax/...``: the local MathJax, or a redirect to the same version on the
    CDN where none is installed; what grader.exchange.plugins.mathjax's loader asks for."""
    from jupyter_server.utils import url_path_join
    from tornado import web

    from grader.exchange.plugins.mathjax import MATHJAX_CDN, MATHJAX_ROUTE

    class MathJaxFiles(web.StaticFileHandler):
        # Public files, as the server's own /static/: no login, and fonts readable by the sandboxed
        # pages that load them (Lab's HTML viewer and /files/ give an HTML file an opaque origin).
        def set_extra_headers(self, path):
            self.set_header("Access-Control-Allow-Origin", "*")

    pattern = url_path_join(base_url, MATHJAX_ROUTE) + "(.*)"
    if (MATHJAX_DIR / "MathJax.js").is_file():
        return [(pattern, MathJaxFiles, {"path": str(MATHJAX_DIR)})]
    return [(pattern, web.RedirectHandler, {"url": MATHJAX_CDN + "{0}"})]


def course_formgrader_url(course_id: str) -> str:
    """Where a course's formgrader service is, on this hub."""
    hub_prefix = os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/")
    return f"{hub_prefix}/services/{course_id}/formgrader"


def formgrader_redirect_handlers(base_url: str) -> list:
    """``<base>formgrader...`` of a user's server, where Lab's Nbgrader > Formgrader goes: on to
    the course's formgrader service.

    nbgrader's formgrader extension in a user's own server has no course ("The course id has not
    been set"): the courses' formgraders are hub services in their course directories. One course:
    a redirect (in Lab's frame too; the service allows being framed by the hub's pages); several: a
    page of links; none (a student): 404, as before."""
    import json

    from jupyter_server.base.handlers import JupyterHandler
    from jupyter_server.utils import url_path_join
    from tornado import web
    from tornado.escape import xhtml_escape
    from tornado.httpclient import AsyncHTTPClient

    class FormgraderRedirect(JupyterHandler):
        @web.authenticated
        async def get(self, rest):
            courses = await self.graded_courses()
            if not courses:
                raise web.HTTPError(404, "not an instructor or grader of any course: no formgrader")
            if len(courses) == 1:
                query = f"?{self.request.query}" if self.request.query else ""
                self.redirect(course_formgrader_url(courses[0]) + (rest or "") + query)
                return
            links = "".join(f'<li><a href="{xhtml_escape(course_formgrader_url(course))}">{xhtml_escape(course)}</a></li>'
                            for course in courses)
            self.finish(f"<!doctype html><title>Formgrader</title><h1>Formgrader</h1><p>Which course?</p><ul>{links}</ul>")

        async def graded_courses(self) -> list[str]:
            """The user's ``formgrade-<course>`` groups, asked of the hub with the server's token
            (``read:users:groups!user``), so a change of groups needs no restart."""
            api_url, token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
            if not (api_url and token):
                return []
            response = await AsyncHTTPClient().fetch(f"{api_url.rstrip('/')}/user",
                                                     headers={"Authorization": f"token {token}"})
            groups = json.loads(response.body).get("groups") or []
            return sorted(group.removeprefix(STAFF_GROUP_PREFIX) for group in groups
                          if group.startswith(STAFF_GROUP_PREFIX))

    return [(url_path_join(base_url, r"formgrader(/.*)?"), FormgraderRedirect)]
