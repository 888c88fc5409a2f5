"""`grader release`: a release students may have fetched is replaced only with --force, as nbgrader's
``release_assignment`` refuses without it; nothing changes when it is refused."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from grader.cli import main
from grader.grading.course_dir import Course, prepare_course_dir
from grader.grading.errors import GraderError
from grader.grading.release import release_assignment
from tests.support import FIXTURES

ASSIGNMENT = "squares"
CORRECTION = "Corrected: the squares are of whole numbers only."


def _correct_the_source(source_notebook) -> None:
    notebook = nbformat.read(source_notebook, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(CORRECTION))
    nbformat.write(notebook, source_notebook)


def _snapshot(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_second_release_is_refused_without_force_and_replaces_the_first_with_it(tmp_path, capsys):
    source = tmp_path / "source"
    shutil.copytree(FIXTURES / ASSIGNMENT, source / ASSIGNMENT)
    course = Course("rel101", tmp_path / "course", tmp_path / "exchange", source_dir=source)
    prepare_course_dir(course)
    release_assignment(course_dir=course.course_dir, assignment_id=ASSIGNMENT)
    outbound = course.exchange_dir / course.course_id / "outbound" / ASSIGNMENT
    generated = course.course_dir / "release" / ASSIGNMENT
    released, student_version = _snapshot(outbound), _snapshot(generated)
    assert f"{ASSIGNMENT}.ipynb" in released and CORRECTION.encode() not in released[f"{ASSIGNMENT}.ipynb"]

    _correct_the_source(source / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    with pytest.raises(GraderError) as refused:
        release_assignment(course_dir=course.course_dir, assignment_id=ASSIGNMENT)
    message = str(refused.value)
    assert message.startswith(f"{ASSIGNMENT} is released already") and "--force" in message
    assert "keep their copy" in message  # what --force means for students who fetched it
    # Refused before anything ran: neither the exchange nor the generated student version changed.
    assert _snapshot(outbound) == released and _snapshot(generated) == student_version

    # The command line: the same refusal, exit status 2, the message on stderr.
    assert main(["--course-dir", str(course.course_dir), "release", ASSIGNMENT]) == 2
    assert f"grader: {ASSIGNMENT} is released already" in capsys.readouterr().err
    assert _snapshot(outbound) == released

    assert main(["--course-dir", str(course.course_dir), "release", ASSIGNMENT, "--force"]) == 0
    assert capsys.readouterr().out == f"released {ASSIGNMENT} (replacing the earlier release)\n"
    replaced = _snapshot(outbound)
    assert CORRECTION.encode() in replaced[f"{ASSIGNMENT}.ipynb"]
    assert b"BEGIN SOLUTION" not in replaced[f"{ASSIGNMENT}.ipynb"]


def test_force_on_a_first_release_just_releases(tmp_path):
    course = Course("rel102", tmp_path / "course", tmp_path / "exchange", source_dir=FIXTURES)
    prepare_course_dir(course)
    release_assignment(course_dir=course.course_dir, assignment_id=ASSIGNMENT, force=True)
    assert (course.exchange_dir / course.course_id / "outbound" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
