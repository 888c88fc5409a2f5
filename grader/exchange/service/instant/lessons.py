"""Which of the course's lessons a student has opened, read from their home on this machine.

A lesson counts as opened when JupyterLab has kept a checkpoint of it (it makes one the first time
a notebook is opened) or the student's copy holds a code cell that ran (the rule of the seats
reports' "lessons run"). Homes are the students' own: nothing there is followed (a link as the
notebook or checkpoint counts as nothing), and a notebook larger than ``MAX_BYTES`` is not read.
Where the homes are not on this machine (Kubernetes: each home is a volume of the user's pod),
the page says the lessons are not known here instead of claiming none was opened.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from grader.regular_files import read_regular_file

LESSONS_FOLDER = "courses"  # where the hub copies the lessons in each home (grader.hub.spawn.homes)
MAX_BYTES = 20 << 20
MAX_AGE = 10.0  # seconds a student's answer is kept: pages refresh every two


def lesson_paths(lessons_dir: Path) -> list[str]:
    """The lessons the hub copies into homes, as paths under ``courses/``."""
    return sorted(path.relative_to(lessons_dir).as_posix() for path in lessons_dir.rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in path.parts)


def _regular(path: Path) -> os.stat_result | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def _ran(path: Path) -> bool:
    info = _regular(path)
    if info is None or info.st_size > MAX_BYTES:
        return False
    try:
        cells = json.loads(read_regular_file(path)).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return False
    return any(isinstance(cell, dict) and cell.get("cell_type") == "code" and cell.get("execution_count")
               for cell in cells)


def opened(home: Path, lesson: str) -> bool:
    copy = home / LESSONS_FOLDER / lesson
    checkpoint = copy.parent / ".ipynb_checkpoints" / f"{copy.stem}-checkpoint.ipynb"
    return _regular(checkpoint) is not None or _ran(copy)


class LessonTracker:
    def __init__(self, *, lessons_dir: Path | None, homes_dir: Path | None):
        self.lessons_dir = lessons_dir
        self.homes_dir = homes_dir
        self._cache: dict[str, tuple[float, dict | None]] = {}

    def lessons(self, student_id: str) -> dict | None:
        """``{"total": n, "opened": [paths]}``; None when the lessons or homes are not on this machine."""
        if (self.lessons_dir is None or self.homes_dir is None or not self.lessons_dir.is_dir()
                or not self.homes_dir.is_dir()):
            return None
        cached = self._cache.get(student_id)
        if cached and time.monotonic() - cached[0] < MAX_AGE:
            return cached[1]
        home = self.homes_dir / student_id
        lessons = lesson_paths(self.lessons_dir)
        # No home yet: the student never started a server, so opened nothing.
        readable = home.is_dir() and not home.is_symlink()
        answer = {"total": len(lessons), "opened": [lesson for lesson in lessons if readable and opened(home, lesson)]}
        self._cache[student_id] = (time.monotonic(), answer)
        return answer
