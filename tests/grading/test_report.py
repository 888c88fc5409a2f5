"""grader.grading.report: the HTML page and its PNGs, from the graded course of test_export.py."""

from __future__ import annotations

import html
import re

import pytest
from nbgrader.api import Gradebook
from PIL import Image

from grader.cli import main
from grader.grading.report import assignment_report, write_report
from grader.grading.resume import ProgressStore
from tests.grading.test_autograde import ASSIGNMENT
from tests.grading.test_export import FLAGGED, GRADED, PENDING, graded_course

pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return graded_course(tmp_path_factory)


@pytest.fixture(scope="module")
def page(course, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("report")
    index = write_report(course_dir=course.course_dir, out_dir=out_dir)
    assert index == out_dir / "index.html"
    return out_dir, index.read_text(encoding="utf-8")


def flagged_section(text: str) -> str:
    return text[text.index('id="flagged"'):]


def test_pass_rates_put_the_hardest_test_first(course):
    with Gradebook(course.gradebook_url, course_id=course.course_id) as gradebook:
        report = assignment_report(gradebook, course_dir=course.course_dir, assignment_id=ASSIGNMENT)
    # Full marks: test_positive and test_arrays by solution, late, tampered-tests and wrong;
    # test_negative (hidden fractions too) not by wrong.
    assert [(rate.test, rate.passed, rate.graded) for rate in report.pass_rates] == [
        ("test_negative", 3, 7), ("test_arrays", 4, 7), ("test_positive", 4, 7)]
    assert sorted(report.scores) == GRADED and report.scores["late"] == pytest.approx(3.2)
    assert report.pending == PENDING
    assert sorted(record.student_id for record in report.flagged) == FLAGGED


def test_flagged_submissions_are_listed_with_their_reasons(course, page):
    _, text = page
    flagged = flagged_section(text)
    records = {record.student_id: record for record in ProgressStore(course.course_dir).records(ASSIGNMENT)}
    for student in FLAGGED:
        record = records[student]
        assert f"<td>{student}</td>" in flagged
        for change in record.changes:  # escaped: the finding quotes a cell id
            assert f"<li>tamper: {html.escape(change)}</li>" in flagged
        for flag in record.flags:
            assert f"<li>{flag.kind}: {html.escape(flag.reason)}</li>" in flagged
        if record.status != "ok":
            assert f"<td>{record.status}</td><td>{html.escape(record.reason)}</td>" in flagged
            assert f"<li>limit: {html.escape(record.status)}" in flagged
    assert "locked cell &#x27;test_negative&#x27; edited" in flagged
    assert "<td>died</td>" in flagged and "<td>output</td>" in flagged
    assert "<td>yes</td>" not in flagged  # the course keeps the scores of flagged submissions
    for student in set(GRADED) - set(FLAGGED):
        assert f"<td>{student}</td>" not in flagged


def test_summary_and_pending_submissions(page):
    _, text = page
    # 7 graded, 2 not graded yet, 3 flagged; scores 4, 2, 0, 4, 0, 0 and 3.2 after the late penalty.
    assert "<tr><td>squares</td><td>7</td><td>2</td><td>3</td><td>1.89</td><td>2.00</td><td>5</td></tr>" in text
    assert "Not graded yet: resubmitted, unseen." in text
    assert "<script" not in text


def test_every_image_is_a_relative_valid_png(page):
    out_dir, text = page
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert sorted(sources) == [f"scores-{ASSIGNMENT}.png", f"tests-{ASSIGNMENT}.png"]
    for source in sources:
        path = out_dir / source
        assert path.read_bytes().startswith(PNG_SIGNATURE)
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def test_cli_report_returns_zero(course, tmp_path):
    assert main(["--course-dir", str(course.course_dir), "report", "--out-dir", str(tmp_path / "out"),
                 "--assignment", ASSIGNMENT]) == 0
    assert (tmp_path / "out" / "index.html").is_file() and (tmp_path / "out" / f"scores-{ASSIGNMENT}.png").is_file()
    assert main(["--course-dir", str(course.course_dir), "report", "--out-dir", str(tmp_path / "x"),
                 "--assignment", "nope"]) == 2


def test_flags_of_every_kind_and_a_zeroed_score_are_listed(tmp_path):
    """A course graded by nbgrader itself (test_integrity_policy.py), tampered-tests flagged with a
    tamper and a files flag and held at 0 by the "zero" policy."""
    from grader.grading.integrity.policy import apply_flagged_policy
    from tests.grading.integrity.test_policy import FLAGS, nbgrader_graded_course

    course = nbgrader_graded_course(tmp_path / "course")
    apply_flagged_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "tampered-tests", FLAGS, "zero")
    text = write_report(course_dir=course.course_dir, out_dir=tmp_path / "out").read_text(encoding="utf-8")
    flagged = flagged_section(text)
    row = flagged[flagged.index("<td>tampered-tests</td>"):]
    row = row[:row.index("</tr>")]
    for flag in FLAGS:
        assert f"<li>{flag.kind}: {html.escape(flag.reason)}</li>" in row
    assert row.endswith("<td>yes</td>")  # score held at 0 until reviewed
    assert "<td>solution</td>" not in flagged and "<td>wrong</td>" not in flagged
    # The zeroed score is what the summary counts: 4 (solution), 2 (wrong), 0.
    assert "<tr><td>squares</td><td>3</td><td>0</td><td>1</td><td>2.00</td><td>2.00</td><td>5</td></tr>" in text
