"""The instructor's instant-feedback policy file and rate limits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from grader.grading.instant.policy import POLICY_FILE, Policy, PolicyError, PolicyFile, parse_policies
from grader.grading.instant.rate_limit import allowance, decide, parse_rate_limit

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def test_off_by_default_without_a_file(tmp_path):
    policies = PolicyFile(tmp_path).load()
    assert policies.for_assignment("a1") == Policy(enabled=False, show="visible", rate_limit=None)


def test_assignments_inherit_the_default_and_override_it():
    policies = parse_policies({"default": {"enabled": True, "rate_limit": "5 per day"},
                               "assignments": {"a2": {"show": "full", "rate_limit": "1 per 10 minutes"},
                                               "a3": {"enabled": False}}})
    assert policies.for_assignment("a1").as_json() == {"enabled": True, "show": "visible", "rate_limit": "5 per day"}
    a2 = policies.for_assignment("a2")
    assert (a2.enabled, a2.show, a2.rate_limit.count, a2.rate_limit.window) == (True, "full", 1, timedelta(minutes=10))
    assert policies.for_assignment("a3").enabled is False


@pytest.mark.parametrize("data, message", [
    ({"default": {"show": "everything"}}, "default.show: 'everything' is not one of visible, full, nothing"),
    ({"assignments": {"a1": {"rate_limit": "lots"}}}, "assignments.a1.rate_limit: 'lots' is not a rate limit"),
    ({"assignments": {"a1": {"enabled": "yes"}}}, "assignments.a1.enabled: 'yes' is not true or false"),
    ({"default": {"shown": "full"}}, "default: unknown key 'shown'"),
    ({"defaults": {}}, "unknown key 'defaults'"),
    ({"assignments": {"a1": {"rate_limit": "0 per day"}}}, "must be at least 1"),
])
def test_bad_policies_name_the_key(data, message):
    with pytest.raises(PolicyError) as error:
        parse_policies(data)
    assert str(error.value).startswith(POLICY_FILE) and message in str(error.value)


def test_the_file_is_read_again_when_it_changes_and_errors_name_it(tmp_path):
    policy_file = PolicyFile(tmp_path)
    (tmp_path / POLICY_FILE).write_text("default: {enabled: true}\n")
    assert policy_file.load().for_assignment("a1").enabled
    (tmp_path / POLICY_FILE).write_text("default: {enabled: true, show: [\n")
    with pytest.raises(PolicyError, match=f"{tmp_path / POLICY_FILE}: not valid YAML"):
        policy_file.load()
    (tmp_path / POLICY_FILE).write_text("default: {enabled: false}\n")
    assert not policy_file.load().for_assignment("a1").enabled


@pytest.mark.parametrize("text, count, window", [
    ("5 per day", 5, timedelta(days=1)), ("1 per 10 minutes", 1, timedelta(minutes=10)),
    ("3/hour", 3, timedelta(hours=1)), ("2 per 2 weeks", 2, timedelta(weeks=2)),
])
def test_rate_limits_parse(text, count, window):
    limit = parse_rate_limit(text)
    assert (limit.count, limit.window) == (count, window)


def test_no_limit_is_none():
    assert parse_rate_limit(None) is None and parse_rate_limit("none") is None
    assert decide(None, [T0] * 100, T0).graded_now


def test_sliding_window_counts_graded_submissions_and_says_when_the_next_is_allowed():
    limit = parse_rate_limit("2 per day")
    first = decide(limit, [], T0)
    assert (first.graded_now, first.attempts_left, first.next_graded_at) == (True, 1, None)
    second = decide(limit, [T0], T0 + timedelta(hours=1))
    assert (second.graded_now, second.attempts_left, second.next_graded_at) == (True, 0, T0 + timedelta(days=1))
    third = decide(limit, [T0, T0 + timedelta(hours=1)], T0 + timedelta(hours=2))
    assert (third.graded_now, third.attempts_left, third.next_graded_at) == (False, 0, T0 + timedelta(days=1))
    # A day after the first, one slot is free again.
    later = decide(limit, [T0, T0 + timedelta(hours=1)], T0 + timedelta(days=1, seconds=1))
    assert later.graded_now and later.next_graded_at == T0 + timedelta(days=1, hours=1)
    assert allowance(limit, [T0, T0 + timedelta(hours=1)], T0 + timedelta(hours=2)) == (0, T0 + timedelta(days=1))
