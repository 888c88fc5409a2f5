"""What a student sees of a graded result under each policy: never a hidden test's name or error."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from grader.exchange.service.instant.state import Row
from grader.exchange.service.instant.views import _student_result

RESULT = {
    "student_id": "amy", "timestamp": "2026-12-07 12:00:00.000000", "score": 2.0, "max_score": 5.0,
    "late_penalty": 0.2, "needs_manual_grade": False, "visible_score": 2.0, "visible_max": 2.0,
    "tests": [
        {"notebook": "nb", "cell": "test_visible", "score": 2.0, "max_score": 2.0, "hidden": False, "error": "", "passed": True},
        {"notebook": "nb", "cell": "test_secret_edge_case", "score": 0.0, "max_score": 3.0, "hidden": True, "error": "",
         "passed": False},
    ],
}


def row(result=RESULT) -> Row:
    now = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
    return Row("c1", "amy", "a1", "s1", "t", now, "/p", True, "graded", result, [], "", now, 0, False)


def test_visible_shows_the_visible_tests_and_their_score_only():
    shown = _student_result(row(), "visible", released=False)
    assert (shown["score"], shown["max_score"], shown["score_of"]) == (2.0, 2.0, "visible tests")
    assert [t["test"] for t in shown["tests"]] == ["test_visible"]
    assert "secret" not in json.dumps(shown) and "late_penalty" not in shown


def test_full_shows_the_whole_score_and_hidden_tests_as_passed_or_failed_only():
    shown = _student_result(row(), "full", released=False)
    assert (shown["score"], shown["max_score"], shown["late_penalty"]) == (2.0, 5.0, 0.2)
    assert [(t["test"], t["passed"]) for t in shown["tests"]] == [("test_visible", True), ("hidden test", False)]
    assert "secret" not in json.dumps(shown)


def test_nothing_shows_no_score_until_the_instructor_releases_feedback():
    assert _student_result(row(), "nothing", released=False) == {}
    after_release = _student_result(row(), "nothing", released=True)
    assert after_release["score"] == 2.0 and "secret" not in json.dumps(after_release)


@pytest.mark.parametrize("show", ["visible", "full", "nothing"])
def test_an_ungraded_row_shows_nothing(show):
    assert _student_result(row(result=None), show, released=False) == {}
