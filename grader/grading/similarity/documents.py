"""What is compared: each student's answer cells, read from their submitted notebooks, as one
document; and what is taken out of every document first: the released starter code and the
instructor's solution.

A cell is an answer cell when its nbgrader metadata says ``solution: true`` (a code answer, or a
written answer in Markdown) or when it has no nbgrader ``grade_id`` at all: a cell the student added
(a long answer split across several cells) or an unmarked cell of the release (the starter's
parameters cell), whose released text is taken out again with the rest of the starter code.
Locked cells (instructions, tests) are never answers.

Notebooks are read as JSON, not through nbformat: 500 submissions read in a fraction of the
time, and a notebook that is not JSON is listed as unreadable rather than stopping the run.
Only the notebooks the assignment's source has are read (nbgrader grades only those), so a
student's ``-Copy1.ipynb`` or an older version left in the folder is never a second document.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.grading.similarity.tokens import Token, code_tokens, text_tokens

_SOLUTION_REGION = re.compile(r"^([ \t]*)[#]*[ \t]*### BEGIN SOLUTION.*?^[ \t]*[#]*[ \t]*### END SOLUTION[^\n]*",
                              re.MULTILINE | re.DOTALL)
_CODE_STUB = "{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()"
_TEXT_STUB = "YOUR ANSWER HERE"


@dataclass(frozen=True)
class Cell:
    notebook: str
    index: int  # the cell's position in its notebook
    kind: str  # "code" or "markdown"
    source: str
    grade_id: str | None


@dataclass
class Document:
    """One student's answers to one assignment: the cells, and their tokens in order."""

    student_id: str
    origin: str  # "" for this course; the corpus folder for an earlier term
    cells: list[Cell] = field(default_factory=list)
    tokens: list[Token] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # notebooks that were not notebooks

    @property
    def label(self) -> str:
        return f"{self.student_id} ({self.origin})" if self.origin else self.student_id

    def add(self, cell: Cell) -> None:
        number = len(self.cells)
        self.cells.append(cell)
        tokenizer = code_tokens if cell.kind == "code" else text_tokens
        self.tokens.extend(tokenizer(cell.source, number))


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _nbgrader(cell: dict) -> dict:
    metadata = cell.get("metadata")
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return nbgrader if isinstance(nbgrader, dict) else {}


def read_cells(path: Path) -> list[tuple[dict, str]] | None:
    """(cell, its source) of every code and Markdown cell of the notebook; None when it is not one."""
    try:
        notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        return None
    return [(cell, _source(cell)) for cell in cells
            if isinstance(cell, dict) and cell.get("cell_type") in ("code", "markdown")]


def is_answer(cell: dict) -> bool:
    nbgrader = _nbgrader(cell)
    return bool(nbgrader.get("solution")) or not nbgrader.get("grade_id")


def student_document(student_id: str, folder: Path, notebooks: list[str], origin: str = "") -> Document:
    """The answer cells of the submission in ``folder``, notebook by notebook in ``notebooks``' order."""
    document = Document(student_id, origin)
    for name in notebooks:
        path = folder / name
        if not path.is_file():
            continue
        cells = read_cells(path)
        if cells is None:
            document.unreadable.append(name)
            continue
        for index, (cell, source) in enumerate(cells):
            if is_answer(cell) and source.strip():
                document.add(Cell(name, index, cell["cell_type"], source, _nbgrader(cell).get("grade_id")))
    return document


def released_version(cell: dict, source: str) -> str:
    """What nbgrader's ``ClearSolutions`` makes of a source cell: solution regions replaced by the
    stub; a solution cell without regions replaced whole."""
    if not _nbgrader(cell).get("solution"):
        return source
    if _SOLUTION_REGION.search(source):
        if cell.get("cell_type") == "code":
            return _SOLUTION_REGION.sub(lambda match: _CODE_STUB.format(indent=match.group(1)), source)
        return _SOLUTION_REGION.sub(_TEXT_STUB, source)
    return _CODE_STUB.format(indent="") if cell.get("cell_type") == "code" else _TEXT_STUB


@dataclass
class Excluded:
    """The cells whose text is given, not written: the starter (every cell as released) and the
    instructor's solution (every cell of the source)."""

    starter: list[Document] = field(default_factory=list)
    solution: list[Document] = field(default_factory=list)


def excluded_documents(source_dir: Path, release_dir: Path | None, notebooks: list[str]) -> Excluded:
    """The starter code and the instructor's solution of an assignment, from its source folder
    (and its release folder, when generated: nbgrader's own starter, which an instructor may
    have edited after generating)."""
    excluded = Excluded()
    for name in notebooks:
        cells = read_cells(source_dir / name) or []
        starter, solution = Document("starter", "release"), Document("solution", "source")
        for index, (cell, source) in enumerate(cells):
            kind = cell["cell_type"]
            solution.add(Cell(name, index, kind, source, _nbgrader(cell).get("grade_id")))
            starter.add(Cell(name, index, kind, released_version(cell, source), _nbgrader(cell).get("grade_id")))
        excluded.starter.append(starter)
        excluded.solution.append(solution)
        if release_dir is not None and (release_dir / name).is_file():
            released = Document("starter", "release")
            for index, (cell, source) in enumerate(read_cells(release_dir / name) or []):
                released.add(Cell(name, index, cell["cell_type"], source, _nbgrader(cell).get("grade_id")))
            excluded.starter.append(released)
    return excluded
