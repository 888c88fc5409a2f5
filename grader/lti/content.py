"""What an instructor can pick in the LMS (deep linking): the lessons and the course's assignments.

Lessons are the notebooks under ``courses/`` of the content folder; assignments are nbgrader's
source folders (``assignments/source/<id>/``). An assignment's max score is the gradebook's once
it is released (what autograde will grade against), else the sum of the ``points`` of the graded
cells in its source notebooks (what ``nbgrader generate_assignment`` will record).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Item:
    kind: str  # "lesson" or "assignment"
    key: str  # lesson path under courses/, or assignment id
    title: str
    max_score: float | None = None  # assignments only

    @property
    def custom(self) -> dict[str, str]:
        """The custom parameters the LMS sends back at each launch of the link."""
        return {self.kind: self.key}


def _title(notebook: Path) -> str:
    try:
        cells = json.loads(notebook.read_text()).get("cells", [])
    except (OSError, ValueError):
        cells = []
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return notebook.stem.replace("_", " ")


def lessons(lessons_dir: Path | None) -> list[Item]:
    if lessons_dir is None or not lessons_dir.is_dir():
        return []
    found = []
    for notebook in sorted(lessons_dir.rglob("*.ipynb")):
        relative = notebook.relative_to(lessons_dir)
        if any(part.startswith(".") for part in relative.parts):
            continue
        found.append(Item("lesson", relative.as_posix(), _title(notebook)))
    return found


def source_points(assignment_dir: Path) -> float:
    """The points of the graded cells of an nbgrader source assignment."""
    total = 0.0
    for notebook in sorted(assignment_dir.glob("*.ipynb")):
        try:
            cells = json.loads(notebook.read_text()).get("cells", [])
        except (OSError, ValueError):
            continue
        for cell in cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") or meta.get("task"):
                total += float(meta.get("points", 0) or 0)
    return total


def assignments(source_dir: Path | None, gradebook_max_scores: dict[str, float | None] | None = None) -> list[Item]:
    if source_dir is None or not source_dir.is_dir():
        return []
    known = gradebook_max_scores or {}
    found = []
    for folder in sorted(path for path in source_dir.iterdir() if path.is_dir() and not path.name.startswith(".")):
        notebooks = sorted(folder.glob("*.ipynb"))
        if not notebooks:
            continue
        max_score = known.get(folder.name)
        found.append(Item("assignment", folder.name, _title(notebooks[0]),
                          max_score if max_score else source_points(folder)))
    return found
