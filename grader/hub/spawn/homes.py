"""What happens before a user's server starts: course content and nbgrader settings in their home."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from grader.exchange.plugins.config import http_exchange_config

# Where a server opens (c.Spawner.default_url), but at a student's first start: first_start_url.
DEFAULT_URL = "/lab/tree/courses"

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


def home_of(spawner) -> Path:
    """A user's home with any spawner: its ``home_dir`` (SimpleLocalProcessSpawner, the secure
    spawner), else the home of the Unix account the spawner runs the server as."""
    home = getattr(spawner, "home_dir", None)
    if home:
        return Path(home)
    return Path(pwd.getpwnam(getattr(spawner, "account", None) or spawner.user.name).pw_dir)


def is_first_start(home: Path) -> bool:
    """Whether the hub has never prepared this home: no nbgrader config written yet (checked before
    :func:`prepare_home` writes it)."""
    return not (home / ".jupyter" / "nbgrader_config.py").exists()


def first_start_url(home: Path, *, start_here: str, first: bool, course_ids: list[str]) -> str:
    """The server's default URL for this start: the course's start-here page (``start_here``,
    relative to the home, copied there with the lessons) at a student's first start, else the
    courses folder. Later starts open the courses folder (Lab restores the student's own layout)."""
    if first and course_ids and start_here and (home / start_here).is_file():
        return "/lab/tree/" + quote(start_here)
    return DEFAULT_URL


def prepare_home(home: Path, *, username: str, course_ids: list[str], exchange_root: Path, courses_dir: Path | None,
                 exchange_url: str = "") -> None:
    """Give a user's home the course lessons and an nbgrader config naming their courses and id.

    ``courses_dir`` None: the hub has no content (``content_dir``), so no lessons are copied."""
    if courses_dir is not None:
        copy_missing(courses_dir, home / "courses")
    jupyter_dir = home / ".jupyter"
    jupyter_dir.mkdir(parents=True, exist_ok=True)
    (jupyter_dir / "nbgrader_config.py").write_text(
        student_config_text(student_id=username, course_ids=course_ids, exchange_root=exchange_root,
                            exchange_url=exchange_url)
    )


def prepare_home_as_owner(home: Path, *, username: str, course_ids: list[str], exchange_root: Path,
                          courses_dir: Path | None, exchange_url: str = "") -> None:
    """:func:`prepare_home`, done by the home's owner when the hub is root and the home is not its own.

    The owner controls what is in their home: written by root, a link planted there
    (``~/.jupyter/nbgrader_config.py`` -> ``/etc/passwd``) would be followed. Written by a child
    process that has become the owner, links lead only where the owner could write anyway, and
    everything made is theirs (the lessons are the student's own copies).
    """
    arguments = dict(home=home, username=username, course_ids=course_ids, exchange_root=exchange_root,
                     courses_dir=courses_dir, exchange_url=exchange_url)
    owner = home.stat()
    if os.geteuid() != 0 or owner.st_uid == 0:
        prepare_home(**arguments)
        return

    def become_owner():
        os.setgroups([])
        os.setgid(owner.st_gid)
        os.setuid(owner.st_uid)

    # As the owner: with the interpreter users' accounts can run (the hub's may be under /root).
    from grader.hub.spawn.users_python import users_python

    users = users_python()
    done = subprocess.run([str(users.executable), "-m", "grader.hub.spawn.homes",
                           json.dumps({key: value if isinstance(value, (list, str, type(None))) else str(value)
                                       for key, value in arguments.items()})],
                          preexec_fn=become_owner, cwd=home, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **users.env})
    if done.returncode != 0:
        raise RuntimeError(f"preparing {home} as its owner (uid {owner.st_uid}) failed: {done.stderr[-2000:]}")


if __name__ == "__main__":
    # prepare_home_as_owner's child, already the home's owner.
    given = json.loads(sys.argv[1])
    prepare_home(Path(given["home"]), username=given["username"], course_ids=given["course_ids"],
                 exchange_root=Path(given["exchange_root"]), courses_dir=Path(given["courses_dir"]) if given["courses_dir"] else None,
                 exchange_url=given["exchange_url"])
