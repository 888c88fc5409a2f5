"""The instructor's instant-feedback policies, per course and per assignment.

They live in the course directory, next to ``nbgrader_config.py``, in ``instant_feedback.yaml``::

    default:                   # every assignment, unless it says otherwise below
      enabled: false           # off unless switched on here (and the admin allowed the course)
      show: visible            # visible | full | nothing
      rate_limit: 5 per day    # "<n> per [<k>] second|minute|hour|day|week", or none
    assignments:
      a1: {enabled: true, show: full, rate_limit: 1 per 10 minutes}

``show``: ``visible`` shows the score on the tests students can see in the release (a test cell
holding any hidden test counts as hidden); ``full`` the whole score, with hidden tests as passed
or failed only; ``nothing`` only that the submission was graded, the score coming with the
feedback the instructor releases. Hidden test source is shown under no policy.

The file is read again whenever it changes, so an instructor edits it without restarting anything.
A file that does not parse is an error naming the file and the key; the exchange then grades
nothing of that course (and says why) rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from grader.grading.errors import GraderError
from grader.grading.instant.rate_limit import RateLimit, parse_rate_limit

POLICY_FILE = "instant_feedback.yaml"
SHOW_CHOICES = ("visible", "full", "nothing")
_KEYS = {"enabled", "show", "rate_limit"}


class PolicyError(GraderError):
    """The policy file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class Policy:
    """What instant feedback does for one assignment."""

    enabled: bool = False
    show: str = "visible"
    rate_limit: RateLimit | None = None

    def as_json(self) -> dict:
        return {"enabled": self.enabled, "show": self.show,
                "rate_limit": self.rate_limit.text if self.rate_limit else None}


@dataclass(frozen=True)
class CoursePolicies:
    default: Policy
    assignments: dict[str, Policy]

    def for_assignment(self, assignment_id: str) -> Policy:
        return self.assignments.get(assignment_id, self.default)


def _policy(entry: object, base: Policy, where: str) -> Policy:
    if entry is None:
        return base
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: expected a mapping with {', '.join(sorted(_KEYS))}")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    policy = base
    if "enabled" in entry:
        if not isinstance(entry["enabled"], bool):
            raise PolicyError(f"{where}.enabled: {entry['enabled']!r} is not true or false")
        policy = replace(policy, enabled=entry["enabled"])
    if "show" in entry:
        if entry["show"] not in SHOW_CHOICES:
            raise PolicyError(f"{where}.show: {entry['show']!r} is not one of {', '.join(SHOW_CHOICES)}")
        policy = replace(policy, show=entry["show"])
    if "rate_limit" in entry:
        try:
            policy = replace(policy, rate_limit=parse_rate_limit(entry["rate_limit"]))
        except ValueError as error:
            raise PolicyError(f"{where}.rate_limit: {error}") from error
    return policy


def parse_policies(data: object, *, source: str = POLICY_FILE) -> CoursePolicies:
    """Policies from the file's parsed YAML; assignments inherit what they do not set from ``default``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping with 'default' and 'assignments'")
    unknown = sorted(set(data) - {"default", "assignments"})
    if unknown:
        raise PolicyError(f"{source}: unknown key {unknown[0]!r} (known: default, assignments)")
    default = _policy(data.get("default"), Policy(), f"{source}: default")
    assignments = data.get("assignments") or {}
    if not isinstance(assignments, dict):
        raise PolicyError(f"{source}: assignments: expected a mapping of assignment ids")
    return CoursePolicies(default, {str(name): _policy(entry, default, f"{source}: assignments.{name}")
                                    for name, entry in assignments.items()})


class PolicyFile:
    """The course's policy file, parsed again only when its modification time or size changes."""

    def __init__(self, course_dir: Path):
        self.path = Path(course_dir) / POLICY_FILE
        self._seen: tuple | None = None
        self._policies: CoursePolicies | PolicyError = CoursePolicies(Policy(), {})

    def load(self) -> CoursePolicies:
        """The current policies; raises :class:`PolicyError` while the file is wrong."""
        try:
            info = self.path.stat()
            seen = (info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            seen = None
        if seen != self._seen:
            self._seen = seen
            try:
                data = yaml.safe_load(self.path.read_text()) if seen else None
                self._policies = parse_policies(data, source=str(self.path))
            except yaml.YAMLError as error:
                self._policies = PolicyError(f"{self.path}: not valid YAML: {error}")
            except PolicyError as error:
                self._policies = error
        if isinstance(self._policies, PolicyError):
            raise self._policies
        return self._policies
