"""What happens before a user's server starts: course content and nbgrader settings in their home."""

from __future__ import annotations

import shutil
from pathlib import Path

from grader.course import Course, student_config_text

# Generated files that must never be copied into a student's home.
_SKIP_NAMES = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}


def copy_missing(source: Path, destination: Path) -> list[Path]:
    """Copy files from ``source`` that ``destination`` lacks; never overwrite a student's edits.

    Returns the files copied. A lesson added to the course later appears at the next spawn, while
    a notebook the student has worked on stays as they left it.
    """
    copied = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if _SKIP_NAMES.intersection(relative.parts) or not path.is_file():
            continue
        target = destination / relative
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied.append(target)
    return copied


def prepare_home(home: Path, *, username: str, course: Course, courses_dir: Path) -> None:
    """Give a user's home the course lessons and an nbgrader config naming their course and id."""
    copy_missing(courses_dir, home / "courses")
    jupyter_dir = home / ".jupyter"
    jupyter_dir.mkdir(parents=True, exist_ok=True)
    (jupyter_dir / "nbgrader_config.py").write_text(student_config_text(course, username))
