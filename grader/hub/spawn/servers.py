"""What a user's server runs and which Jupyter configuration it reads (one machine and Kubernetes)."""

from __future__ import annotations

import os
import sys

from grader.resources import JUPYTER_CONFIG_DIRS

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


def singleuser_command(*, as_root: bool = False) -> list[str]:
    """The command of a Jupyter server: users' servers, and each course's formgrader."""
    # The same interpreter as the hub, so kernels see the platform's torch and tensorflow.
    # grader.hub.spawn.singleuser: jupyterhub.singleuser without two eager imports that cost most of
    # a start's CPU (benchmarks/server_startup.py).
    command = [sys.executable, "-m", "grader.hub.spawn.singleuser"]
    # Only where a server really runs as root: the courses' formgraders (hub services), and a
    # throw-away test hub in demo mode (spawner.allow_root_demo). Users' servers never, in secure mode.
    if as_root and _running_as_root():
        command.append("--allow-root")
    return command
