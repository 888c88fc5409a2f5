"""Open nbgrader's own API on a course directory, reading its standard ``nbgrader_config.py``.

Every verb goes through here so an existing nbgrader course works unchanged.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from grader.grading.errors import GraderError  # noqa: F401  (raised here; imported from here by the verbs)
from grader.resources import interpreter_bin_on_path

# nbgrader runs Alembic as a program when it creates a gradebook: every verb imports this module first.
interpreter_bin_on_path()


def load_course_config(course_dir: Path) -> Config:
    config_file = Path(course_dir) / "nbgrader_config.py"
    if not config_file.is_file():
        raise GraderError(f"{config_file}: no nbgrader_config.py; is {course_dir} a course directory?")
    config = PyFileConfigLoader(config_file.name, path=str(config_file.parent)).load_config()
    # nbgrader resolves relative paths against the root; pin it to this directory.
    config.CourseDirectory.root = str(Path(course_dir).resolve())
    return config


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def open_api(course_dir: Path, overrides: Config | None = None) -> Iterator[NbGraderAPI]:
    """Yield an ``NbGraderAPI`` for the course, working inside the course directory as nbgrader does."""
    config = load_course_config(course_dir)
    if overrides is not None:
        config.merge(overrides)
    coursedir = CourseDirectory(config=config)
    with _working_directory(Path(course_dir)):
        yield NbGraderAPI(coursedir=coursedir, config=config)


def checked(result: dict, what: str) -> dict:
    """Raise a GraderError carrying nbgrader's own log when an API call reports failure."""
    if not result.get("success"):
        detail = (result.get("error") or "") + (result.get("log") or "")
        raise GraderError(f"{what} failed:\n{detail.strip()}")
    return result
