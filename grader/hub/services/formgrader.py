"""Each course's formgrader (a Jupyter server in its course directory, run by the hub as a
service), its course directory and nbgrader's two groups per course (one machine and Kubernetes)."""

from __future__ import annotations

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
