"""What a graded submission scored, read back from the gradebook ``grader autograde`` wrote.

Every test cell is marked hidden or visible from the instructor's source notebooks: a test cell
holding any hidden test (nbgrader's ``### BEGIN HIDDEN TESTS``) is hidden as a whole, because its
score alone says whether the hidden part passed. Without the source notebooks every test counts as
hidden, so nothing is shown that might not be visible. Error text is kept for visible tests only:
a failing hidden test's message or traceback quotes its source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import ClearHiddenTests

MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class TestResult:
    notebook: str
    cell: str
    score: float
    max_score: float
    hidden: bool
    error: str = ""  # the failing visible test's "Name: message"; always empty for hidden tests

    @property
    def passed(self) -> bool:
        return self.score >= self.max_score


@dataclass
class GradedResult:
    """One student's graded submission, for the service to store and filter by policy."""

    student_id: str
    timestamp: str  # the submission's timestamp as the gradebook has it (the exchange's timestamp.txt)
    score: float
    max_score: float
    late_penalty: float
    needs_manual_grade: bool
    tests: list[TestResult] = field(default_factory=list)

    @property
    def visible_score(self) -> float:
        return sum(test.score for test in self.tests if not test.hidden)

    @property
    def visible_max(self) -> float:
        return sum(test.max_score for test in self.tests if not test.hidden)

    def as_json(self) -> dict:
        answer = asdict(self)
        answer.update(visible_score=self.visible_score, visible_max=self.visible_max)
        for test, source in zip(answer["tests"], self.tests):
            test["passed"] = source.passed
        return answer


def hidden_test_cells(source_folder: Path) -> set[tuple[str, str]] | None:
    """{(notebook, grade id)} of test cells with hidden tests; None when there is no source."""
    notebooks = sorted(Path(source_folder).glob("*.ipynb"))
    if not notebooks:
        return None
    delimiter = ClearHiddenTests.begin_test_delimeter.default_value
    hidden = set()
    for path in notebooks:
        for cell in nbformat.read(path, as_version=4).cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id and delimiter in cell.source:
                hidden.add((path.stem, grade_id))
    return hidden


def _visible_errors(autograded_folder: Path, notebook: str) -> dict[str, str]:
    """{grade id: "Name: message"} of the failing cells of one autograded notebook."""
    path = autograded_folder / f"{notebook}.ipynb"
    if not path.is_file():
        return {}
    errors = {}
    for cell in nbformat.read(path, as_version=4).cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for output in cell.get("outputs", []) if grade_id else []:
            if output.get("output_type") == "error":
                errors[grade_id] = f"{output.get('ename', '')}: {output.get('evalue', '')}"[:MAX_ERROR_CHARS]
    return errors


def graded_result(*, db_url: str, course_id: str, assignment_id: str, student_id: str,
                  source_folder: Path, autograded_folder: Path) -> GradedResult | None:
    """The student's submission as the gradebook has it now; None if it has none."""
    hidden = hidden_test_cells(source_folder)
    with Gradebook(db_url, course_id=course_id) as gradebook:
        try:
            submission = gradebook.find_submission(assignment_id, student_id)
        except MissingEntry:
            return None
        tests = []
        for notebook in submission.notebooks:
            errors = _visible_errors(autograded_folder, notebook.name)
            for grade in notebook.grades:
                if grade.cell.cell_type != "code" or grade.auto_score is None:
                    continue  # answers graded by hand are not tests; the formgrader shows them
                is_hidden = hidden is None or (notebook.name, grade.name) in hidden
                tests.append(TestResult(notebook.name, grade.name, float(grade.score), float(grade.max_score),
                                        is_hidden, "" if is_hidden else errors.get(grade.name, "")))
        return GradedResult(student_id, str(submission.timestamp), float(submission.score),
                            float(submission.max_score), float(submission.late_submission_penalty or 0.0),
                            bool(submission.needs_manual_grade), sorted(tests, key=lambda t: (t.notebook, t.cell)))
