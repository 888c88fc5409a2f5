"""Each course's formgrader (a Jupyter server in its course directory, run by the hub as a
service), its course directory and nbgrader's two groups per course (one machine and Kubernetes)."""

from __future__ import annotations

import os
from pathlib import Path

from grader.grading.course_dir import prepare_course_dir
from grader.hub.roles import platform_groups
from grader.hub.settings import CourseSettings, HubSettings
from grader.hub.spawn.servers import STAFF_JUPYTER_CONFIG, singleuser_command


def course_service(settings: HubSettings, course: CourseSettings) -> dict:
    """One course's formgrader: a Jupyter server in its course directory, run by the hub as a service."""
    course_dir = settings.course(course.course_id).course_dir
    return {
        "name": course.course_id,
        "display": True,
        "info": {"title": course.title} if course.title else {},
        "url": f"http://{settings.ip}:{course.formgrader_port}",
        "command": [*singleuser_command(as_root=True), f"--ServerApp.root_dir={course_dir}"],
        "cwd": str(course_dir),
        "oauth_no_confirm": True,
        # The staff folder lets JupyterLab show the formgrader in a frame (nbgrader issue #1870).
        "environment": {"JUPYTERHUB_DEFAULT_URL": "/formgrader", "JUPYTER_CONFIG_PATH": str(STAFF_JUPYTER_CONFIG)},
    }


def update_courses(c, settings: HubSettings) -> None:
    """Every course's course directory, and nbgrader's two groups per course."""
    settings.homes_dir.mkdir(parents=True, exist_ok=True)
    for course in settings.courses:
        prepare_course_dir(settings.course(course.course_id))
    # Under OIDC the identity provider owns group membership (JupyterHub forbids load_groups then).
    c.JupyterHub.load_groups = {} if settings.auth.type == "oidc" else platform_groups(settings)


# --- inside the formgrader service (grader.hub.spawn.servers's extension calls these) -----------

def _patched_utils_js(original: str) -> str | None:
    """nbgrader's formgrader ``utils.js`` with its links to files inside the service.

    Its ``linkTo`` (the assignment names and "Preview" of Manage Assignments) points at
    ``/tree/<path>``, ``/notebooks/...``, ``/edit/...`` from the site's root, where a hub has no such
    page (a 404), and inside Lab's frame asks the instructor's own Lab to open a path of the course
    directory, which their server does not have. Here both open the service's own pages
    (``<base_url>/tree/...``, the course directory) in a new tab. None when nbgrader's code is not
    the one this patch knows (then its own is served, unchanged)."""
    top_only, absolute = "if (window === window.top) {", '.attr("href", prefix + path)'
    if original.count(top_only) != 1 or original.count(absolute) != 1:
        return None
    return (original.replace(top_only, "if (true) {  // aicourse: the service's own pages, framed or not")
            .replace(absolute, '.attr("href", base_url + prefix + path)'))


def formgrader_service_handlers(base_url: str, log, course_dir: Path | None = None) -> list:
    """The service's own routes: nbgrader's ``utils.js`` with working links, and (given the
    course directory) the Similarity column of Manage Submissions
    (:mod:`grader.hub.services.formgrader_similarity`)."""
    from jupyter_server.utils import url_path_join
    from nbgrader.server_extensions.formgrader import handlers as nbgrader_handlers
    from tornado import web

    from grader.hub.services.formgrader_similarity import similarity_handlers

    handlers = similarity_handlers(base_url, course_dir, log) if course_dir is not None else []
    original = Path(nbgrader_handlers.static_path, "js", "utils.js").read_text()
    patched = _patched_utils_js(original)
    if patched is None:
        log.warning("aicourse: nbgrader's formgrader utils.js is not the one expected; its links to files "
                    "are left as they are (they miss the service's prefix)")
        return handlers

    class UtilsJs(web.RequestHandler):
        def get(self):
            self.set_header("Content-Type", "application/javascript; charset=UTF-8")
            self.set_header("Cache-Control", "no-cache")
            self.finish(patched)

    return [*handlers, (url_path_join(base_url, "formgrader/static/js/utils.js"), UtilsJs)]


def use_local_mathjax(log) -> None:
    """The grading view's HTML (nbconvert's templates through nbgrader's) loads MathJax from this
    service rather than a CDN: nbconvert's ``base/mathjax.html.j2`` with the loader of
    :mod:`grader.exchange.plugins.mathjax`, in a folder put first on ``JUPYTER_PATH``, where
    nbconvert looks for templates before its own. Done before nbgrader's extension makes its exporter."""
    import atexit
    import shutil
    import tempfile

    from jupyter_core.paths import jupyter_path

    from grader.exchange.plugins.mathjax import macro_template

    found = [Path(folder) / "mathjax.html.j2" for folder in jupyter_path("nbconvert", "templates", "base")]
    found = [path for path in found if path.is_file()]
    template = macro_template(found[0].read_text()) if found else None
    if template is None:
        log.warning("aicourse: nbconvert's mathjax.html.j2 not found or not the one expected; the grading view "
                    "loads MathJax from the CDN")
        return
    data_dir = Path(tempfile.mkdtemp(prefix="aicourse-nbconvert-"))
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    target = data_dir / "nbconvert" / "templates" / "base" / "mathjax.html.j2"
    target.parent.mkdir(parents=True)
    target.write_text(template)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(data_dir), os.environ.get("JUPYTER_PATH")]))
