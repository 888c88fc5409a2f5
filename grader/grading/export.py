"""Export: the gradebook's scores, after late penalties, as a CSV file for another system.

Each format is an nbgrader ``ExportPlugin``, so a new one (another LMS) is one small class, and
the same classes work under ``nbgrader export --exporter=grader.grading.export.CanvasExport``. Every row
says what the gradebook says, with two rules:

- a student with a submission that is not graded yet (:func:`grader.grading.status.pending_students`:
  never graded, or resubmitted since) gets a **blank** score, never a partial or stale one;
- a student in the gradebook with no submission at all gets **0**, as in nbgrader's own CSV; so
  export after the due date, or blanks and zeros will mean "not yet" and "missed".

Scores are the gradebook's total (autograded plus manual grades) minus the late penalty that
nbgrader stored at autograde time (see :mod:`grader.grading.late` for the policy).
"""

from __future__ import annotations

import csv
import datetime
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from nbgrader.plugins import ExportPlugin
from traitlets import Dict, List, Unicode

from grader.grading.nbgrader_api import GraderError, load_course_config
from grader.grading.status import pending_students


@dataclass(frozen=True)
class ExportedScore:
    """One student's result on one assignment."""

    assignment: str
    duedate: datetime.datetime | None
    max_score: float
    student_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    timestamp: datetime.datetime | None = None
    raw_score: float | None = None  # None: submitted, not graded yet
    late_penalty: float | None = None

    @property
    def score(self) -> float | None:
        if self.raw_score is None:
            return None
        return max(0.0, self.raw_score - (self.late_penalty or 0.0))


def format_number(value: float | None) -> str:
    """Two decimals at most, no trailing zeros; blank for no value."""
    if value is None:
        return ""
    return f"{value:.2f}".rstrip("0").rstrip(".")


class GradedExportPlugin(ExportPlugin):
    """An ``ExportPlugin`` that leaves out the scores of submissions not graded yet."""

    pending = Dict(
        value_trait=List(Unicode()),
        help="{assignment: [student ids]} submitted but not graded yet: exported blank. "
        "Empty under plain `nbgrader export`, which then exports every gradebook score.",
    )

    def selected_assignments(self, gradebook: Gradebook) -> list:
        """The gradebook's assignments named in ``assignment`` (all when empty), by due date."""
        names = {str(name) for name in self.assignment}
        return [assignment for assignment in gradebook.assignments if not names or assignment.name in names]

    def scores(self, gradebook: Gradebook) -> list[ExportedScore]:
        """Every (assignment, student) pair selected by ``assignment`` and ``student``, in the
        gradebook's order (assignments by due date, students by name)."""
        students = {str(student_id) for student_id in self.student}
        scores = []
        for assignment in self.selected_assignments(gradebook):
            pending = set(self.pending.get(assignment.name, []))
            for student in gradebook.students:
                if students and student.id not in students:
                    continue
                row = dict(assignment=assignment.name, duedate=assignment.duedate, max_score=assignment.max_score,
                           student_id=student.id, first_name=student.first_name, last_name=student.last_name,
                           email=student.email)
                if student.id in pending:
                    scores.append(ExportedScore(**row))
                    continue
                try:
                    submission = gradebook.find_submission(assignment.name, student.id)
                except MissingEntry:
                    scores.append(ExportedScore(**row, raw_score=0.0, late_penalty=0.0))
                    continue
                scores.append(ExportedScore(**row, timestamp=submission.timestamp, raw_score=submission.score,
                                            late_penalty=submission.late_submission_penalty or 0.0))
        return scores


NBGRADER_CSV_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                        "raw_score", "late_submission_penalty", "score", "max_score"]


class CsvExport(GradedExportPlugin):
    """nbgrader's own CSV columns (``nbgrader export``), properly quoted, blank when not graded yet."""

    def export(self, gradebook: Gradebook) -> None:
        with open(self.to or "grades.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(NBGRADER_CSV_COLUMNS)
            for row in self.scores(gradebook):
                writer.writerow([
                    row.assignment, row.duedate or "", row.timestamp or "", row.student_id, row.last_name or "",
                    row.first_name or "", row.email or "", format_number(row.raw_score),
                    format_number(row.late_penalty), format_number(row.score), format_number(row.max_score),
                ])


class CanvasExport(GradedExportPlugin):
    """A CSV that Canvas's gradebook import reads: one column per assignment, one row per student.

    Students are matched by ``SIS Login ID``, the nbgrader student id (the hub login); ``ID`` and
    ``SIS User ID`` are left for Canvas to fill. A column is matched by the id in parentheses:
    set ``c.CanvasExport.assignment_ids = {"a1_backprop": "1234"}`` to the Canvas assignment ids, or
    the nbgrader name is used, which Canvas imports as a new assignment.
    """

    assignment_ids = Dict(
        value_trait=Unicode(), help="Canvas assignment id of each nbgrader assignment name."
    ).tag(config=True)

    def export(self, gradebook: Gradebook) -> None:
        scores = self.scores(gradebook)
        assignments = [(assignment.name, assignment.max_score) for assignment in self.selected_assignments(gradebook)]
        by_student: dict[str, dict[str, ExportedScore]] = {}
        for row in scores:
            by_student.setdefault(row.student_id, {})[row.assignment] = row
        names = {student_id: canvas_name(next(iter(rows.values()))) for student_id, rows in by_student.items()}
        with open(self.to or "canvas.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
                            + [f"{name} ({self.assignment_ids.get(name, name)})" for name, _ in assignments])
            writer.writerow(["Points Possible", "", "", "", ""] + [format_number(points) for _, points in assignments])
            # Sorted as Canvas lists students, by sortable name.
            for student_id, rows in sorted(by_student.items(), key=lambda item: (names[item[0]].casefold(), item[0])):
                writer.writerow([names[student_id], "", "", student_id, ""]
                                + [format_number(rows[name].score) for name, _ in assignments])


def canvas_name(row: ExportedScore) -> str:
    """Canvas's sortable name, "Last, First", or the student id when the gradebook has no name."""
    return ", ".join(part for part in (row.last_name, row.first_name) if part) or row.student_id


EXPORTERS: dict[str, type[GradedExportPlugin]] = {"csv": CsvExport, "canvas": CanvasExport}


def export_grades(
    *,
    course_dir: Path,
    to: Path,
    format: str | type[GradedExportPlugin] = "csv",
    assignments: list[str] | None = None,
) -> Path:
    """Write the scores of ``assignments`` (default: all in the gradebook) to ``to``.

    ``format`` is a name in ``EXPORTERS`` or a ``GradedExportPlugin`` subclass; the plugin reads
    its settings from the course's ``nbgrader_config.py``. Returns the file written.
    """
    course_dir, to = Path(course_dir).resolve(), Path(to).resolve()
    if isinstance(format, str):
        if format not in EXPORTERS:
            raise GraderError(f"unknown export format {format!r}; known: {', '.join(EXPORTERS)}")
        format = EXPORTERS[format]
    config = load_course_config(course_dir)
    coursedir = CourseDirectory(config=config)
    with Gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
        known = [assignment.name for assignment in gradebook.assignments]
        unknown = sorted(set(assignments or []) - set(known))
        if unknown:
            raise GraderError(f"{', '.join(unknown)}: not in the gradebook of {course_dir}")
        selected = list(assignments) if assignments else known
        pending = {name: sorted(pending_students(course_dir=course_dir, assignment_id=name)) for name in selected}
        to.parent.mkdir(parents=True, exist_ok=True)
        format(config=config, to=str(to), assignment=selected, pending=pending).export(gradebook)
    return to
