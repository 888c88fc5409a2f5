"""What happens before a user's server starts: course content and nbgrader settings in their home."""

from __future__ import annotations

import shutil
from pathlib import Path

from grader.exchange.config import http_exchange_config


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


def student_config_text(*, student_id: str, course_ids: list[str], exchange_root: Path, exchange_url: str = "") -> str:
    """The ``nbgrader_config.py`` a user's server reads: the exchange, who they are, their courses.

    The hub's groups (``nbgrader-<course>``) decide which courses' assignments a student sees:
    nbgrader's JupyterHub plugin asks the hub with the server's own token, so a student of one
    course never lists, fetches or submits to another.

    With ``exchange_url`` (the HTTP exchange) nbgrader talks to the exchange service with the
    server's hub token instead of writing a shared folder; the student id below then only names
    local folders, since the service files every submission under the hub's name for the caller.
    """
    lines = [
        "# Written by the hub at spawn time; edits are overwritten at the next start.",
        "c = get_config()  # noqa: F821",
        *([http_exchange_config(exchange_url).rstrip("\n")] if exchange_url
          else [f"c.Exchange.root = {str(exchange_root)!r}"]),
        "c.Authenticator.plugin_class = 'nbgrader.auth.JupyterHubAuthPlugin'",
        # Fetched assignments go to <course>/<assignment>, so two courses' "a1" never collide.
        "c.Exchange.path_includes_course = True",
        # nbgrader names a submission after the OS user unless told otherwise; in demo mode every
        # student shares one OS user, so the hub says who the student is. With the file exchange
        # this is only a claim the student can edit (nbgrader #1097); the HTTP exchange ignores it.
        f"c.CourseDirectory.student_id = {student_id!r}",
    ]
    if len(course_ids) == 1:
        # The command line needs no --course then; with several, the Assignments tab lists them.
        lines.append(f"c.CourseDirectory.course_id = {course_ids[0]!r}")
    return "\n".join(lines) + "\n"


def prepare_home(home: Path, *, username: str, course_ids: list[str], exchange_root: Path, courses_dir: Path,
                 exchange_url: str = "") -> None:
    """Give a user's home the course lessons and an nbgrader config naming their courses and id."""
    copy_missing(courses_dir, home / "courses")
    jupyter_dir = home / ".jupyter"
    jupyter_dir.mkdir(parents=True, exist_ok=True)
    (jupyter_dir / "nbgrader_config.py").write_text(
        student_config_text(student_id=username, course_ids=course_ids, exchange_root=exchange_root,
                            exchange_url=exchange_url)
    )
