"""The on-disk layout of one nbgrader course, and the nbgrader configuration that points at it.

A course directory is generated outside git: its ``source/`` links back to the repository's
``assignments/source`` (so instructors author in git), while ``release/``, ``submitted/``,
``autograded/``, ``feedback/`` and ``gradebook.db`` are nbgrader's generated state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from grader.exchange.plugins.config import http_exchange_config
from grader.resources import ASSIGNMENTS_SOURCE_DIR

# nbgrader's default exchange is world-writable with the sticky bit, so students can drop
# submissions into inbound/ but not delete each other's.
EXCHANGE_MODE = 0o1777


@dataclass(frozen=True)
class Course:
    """One course: its nbgrader id, its course directory and the exchange it releases into."""

    course_id: str
    course_dir: Path
    exchange_dir: Path
    source_dir: Path = ASSIGNMENTS_SOURCE_DIR
    # The HTTP exchange's URL (grader/exchange_service); empty: nbgrader's file exchange in exchange_dir.
    exchange_url: str = ""
    # c.Grader.flagged_policy of the course (grader.grading.integrity.policy): "keep" or "zero".
    flagged_policy: str = "keep"

    @property
    def gradebook_path(self) -> Path:
        return self.course_dir / "gradebook.db"

    @property
    def gradebook_url(self) -> str:
        return f"sqlite:///{self.gradebook_path}"


def instructor_config_text(course: Course) -> str:
    """The ``nbgrader_config.py`` an instructor's tools read inside the course directory."""
    return (
        "# Written by grader.grading.course_dir.prepare_course_dir; edit the platform settings instead.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {course.course_id!r}\n"
        f"c.CourseDirectory.root = {str(course.course_dir)!r}\n"
        f"c.CourseDirectory.db_url = {course.gradebook_url!r}\n"
        + (http_exchange_config(course.exchange_url) if course.exchange_url
           else f"c.Exchange.root = {str(course.exchange_dir)!r}\n"
           # nbgrader's own collect follows symlinks a student leaves in inbound/; this one copies
           # regular files only (formgrader, `nbgrader collect` and `grader collect` alike).
           "c.ExchangeFactory.collect = 'grader.grading.file_exchange.Collect'\n") +
        "# Lesson-sized assignments train small networks; nbgrader's 30 s per cell is too tight.\n"
        "c.ExecutePreprocessor.timeout = 300\n"
        "# What `grader autograde` does with the score of a submission it flags (tampering, files that\n"
        "# are not regular files, a known way of forging a verdict, a limit hit): \"keep\" it and list\n"
        "# the submission in `grader status`/`grader report`, or \"zero\" it until an instructor\n"
        "# reviews it in the formgrader (editing the score there restores it).\n"
        f'c.Grader.flagged_policy = "{course.flagged_policy}"\n'
    )


def prepare_exchange(exchange_dir: Path) -> None:
    """Create the exchange root with the permissions nbgrader's file exchange expects."""
    exchange_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(exchange_dir, EXCHANGE_MODE)


def prepare_course_dir(course: Course) -> Path:
    """Create (idempotently) the course directory and its nbgrader config; return the config path."""
    course.course_dir.mkdir(parents=True, exist_ok=True)
    source_link = course.course_dir / "source"
    # A link to a folder that is not there (yet) is still the link: exists() follows it, is_symlink() does not.
    if not source_link.exists() and not source_link.is_symlink():
        source_link.symlink_to(course.source_dir, target_is_directory=True)
    prepare_exchange(course.exchange_dir)
    config_path = course.course_dir / "nbgrader_config.py"
    config_path.write_text(instructor_config_text(course))
    return config_path
