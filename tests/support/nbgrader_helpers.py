"""Shared test helpers: a throw-away nbgrader course in ``tmp_path`` that grades given notebooks.

Used by the round-trip test and by each assignment's "tests of the tests" (solution full marks,
blank release zero, each wrong implementation loses exactly the points of the test that catches it).
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import nbformat

from grader.grading.autograde import autograde_assignment
from grader.grading.course_dir import Course, prepare_course_dir
from grader.grading.gradebook import grade_rows
from grader.grading.nbgrader_api import checked, open_api
from grader.resources import ASSIGNMENTS_SOURCE_DIR

COURSE_ID = "testcourse"


def make_course(tmp_path: Path) -> Course:
    course = Course(COURSE_ID, tmp_path / "course", tmp_path / "exchange", ASSIGNMENTS_SOURCE_DIR)
    prepare_course_dir(course)
    return course


def generate(course: Course, assignment_id: str) -> Path:
    """Generate the student version; return its release folder."""
    with open_api(course.course_dir) as api:
        checked(api.generate_assignment(assignment_id), f"generate {assignment_id}")
    return course.course_dir / "release" / assignment_id


def released_notebook(course: Course, assignment_id: str, notebook: str) -> nbformat.NotebookNode:
    return nbformat.read(course.course_dir / "release" / assignment_id / notebook, as_version=4)


def source_notebook(assignment_id: str, notebook: str) -> nbformat.NotebookNode:
    return nbformat.read(ASSIGNMENTS_SOURCE_DIR / assignment_id / notebook, as_version=4)


def submit_directly(course: Course, assignment_id: str, student_id: str, notebooks: dict[str, nbformat.NotebookNode]) -> None:
    """Place a student's notebooks in ``submitted/`` as ``collect`` would, bypassing the exchange
    (the exchange itself is covered by tests/integration/test_roundtrip.py)."""
    folder = course.course_dir / "submitted" / student_id / assignment_id
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / name)
    # Anything else the release ships (data files, helper modules) comes along as a student would have it.
    release = course.course_dir / "release" / assignment_id
    for extra in release.iterdir():
        if extra.suffix != ".ipynb" and not (folder / extra.name).exists():
            (shutil.copytree if extra.is_dir() else shutil.copy2)(extra, folder / extra.name)


def autograde_scores(course: Course, assignment_id: str, students: list[str]) -> dict[str, dict[str, float]]:
    """Autograde ``students``; return {student: {grade cell id: auto score}} from the gradebook."""
    outcomes = autograde_assignment(course_dir=course.course_dir, assignment_id=assignment_id, students=students, progress=False)
    failed = [o for o in outcomes if not o.success]
    assert not failed, f"autograde failed: {failed}"
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    for student in students:
        for row in grade_rows(course.gradebook_url, course_id=course.course_id, assignment_id=assignment_id, student_id=student):
            scores[student][row.cell] = row.auto_score
    return dict(scores)


def replace_in_solution(nb: nbformat.NotebookNode, old: str, new: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` with ``old`` replaced by ``new`` in exactly one cell: a 'wrong implementation'."""
    nb = nbformat.from_dict(nb)
    hits = [cell for cell in nb.cells if old in cell.source]
    assert len(hits) == 1, f"{old!r} occurs in {len(hits)} cells, expected exactly 1"
    hits[0].source = hits[0].source.replace(old, new)
    return nb


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def with_answer(nb: nbformat.NotebookNode, grade_id: str, source: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose answer cell ``grade_id`` holds ``source`` instead: a student's own
    way of writing that answer (the "correct but written differently" submissions)."""
    nb = nbformat.from_dict(nb)
    hits = [cell for cell in nb.cells if _grade_id(cell) == grade_id]
    assert len(hits) == 1, f"{grade_id!r} names {len(hits)} cells, expected exactly 1"
    assert hits[0].metadata["nbgrader"].get("solution"), f"{grade_id!r} is not an answer cell"
    hits[0].source = source
    return nb


def with_extra_cell(nb: nbformat.NotebookNode, after_grade_id: str, source: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` with a student's own code cell (no nbgrader metadata) right after ``after_grade_id``."""
    nb = nbformat.from_dict(nb)
    index = [i for i, cell in enumerate(nb.cells) if _grade_id(cell) == after_grade_id]
    assert len(index) == 1, f"{after_grade_id!r} names {len(index)} cells, expected exactly 1"
    nb.cells.insert(index[0] + 1, nbformat.v4.new_code_cell(source))
    return nb
