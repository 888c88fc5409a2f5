"""Feedback: generate each student's graded HTML and release it to the exchange.

nbgrader's feedback shows test cells as they ran, hidden tests included (nbgrader #917): both the
hidden source and the traceback of a failing hidden test, which quotes it. Here hidden regions
are removed and the outputs of cells that held hidden tests are reduced to the error's name.
"""

from __future__ import annotations

from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades, NbGraderPreprocessor
from traitlets.config import Config

from grader.grading.nbgrader_api import checked, open_api


class RedactHiddenTestOutputs(NbGraderPreprocessor):
    """Keep only the error name of cells with hidden tests: tracebacks and prints reveal them."""

    def preprocess_cell(self, cell, resources, index):
        delimiter = ClearHiddenTests.begin_test_delimeter.default_value
        if cell.cell_type != "code" or delimiter not in cell.source:
            return cell, resources
        redacted = []
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                output.evalue = ""
                output.traceback = [f"{output.ename}: a test in this cell failed (details hidden)"]
                redacted.append(output)
        cell.outputs = redacted
        return cell, resources


def feedback_config() -> Config:
    config = Config()
    # Grades first (they read the cells), then redact outputs, then strip the hidden source.
    config.GenerateFeedback.preprocessors = [GetGrades, RedactHiddenTestOutputs, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
    config.ClearHiddenTests.enforce_metadata = False
    return config


def generate_feedback(*, course_dir: Path, assignment_id: str, student_id: str | None = None) -> None:
    """Write feedback HTML into the course's ``feedback/`` tree for one student (or all)."""
    with open_api(course_dir, feedback_config()) as api:
        checked(api.generate_feedback(assignment_id, student_id), f"generating feedback for {assignment_id}")


def release_feedback(*, course_dir: Path, assignment_id: str, student_id: str | None = None) -> None:
    """Generate feedback and put it where students' ``fetch_feedback`` finds it."""
    generate_feedback(course_dir=course_dir, assignment_id=assignment_id, student_id=student_id)
    with open_api(course_dir) as api:
        checked(api.release_feedback(assignment_id, student_id), f"releasing feedback for {assignment_id}")
