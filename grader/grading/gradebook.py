"""Read scores back from nbgrader's gradebook (SQLite by default, any SQLAlchemy URL)."""

from __future__ import annotations

from dataclasses import dataclass

from nbgrader.api import Gradebook, MissingEntry


@dataclass(frozen=True)
class GradeRow:
    """One graded cell of one submission, as the gradebook stores it."""

    student_id: str
    notebook: str
    cell: str
    auto_score: float | None
    manual_score: float | None
    max_score: float
    cell_type: str  # "code" cells are autograded; "markdown" answers are graded by hand

    @property
    def autograded(self) -> bool:
        return self.cell_type == "code"


def grade_rows(db_url: str, *, course_id: str, assignment_id: str, student_id: str) -> list[GradeRow]:
    """Every grade of one student's submission, sorted by notebook and cell name."""
    rows = []
    with Gradebook(db_url, course_id=course_id) as gradebook:
        try:
            submission = gradebook.find_submission(assignment_id, student_id)
        except MissingEntry:
            return []
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                rows.append(
                    GradeRow(student_id, notebook.name, grade.name, grade.auto_score, grade.manual_score, grade.max_score, grade.cell.cell_type)
                )
    return sorted(rows, key=lambda row: (row.notebook, row.cell))
