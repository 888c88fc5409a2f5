"""``grader lti sync-roster COURSE``: the LMS's roster (NRPS) into the course's gradebook and hub groups.

For every LMS course linked to the hub course, the members the Names and Role Provisioning
Service lists (active ones; an inactive or absent member counts as removed) are mapped as a
launch maps them (:func:`grader.lti.launch.course_role`, :func:`grader.lti.launch.username_from`)
and their LTI identities recorded, so scores can go back to people who never launched. Then:

- hub groups (``nbgrader-<course>``, ``formgrade-<course>``, ``lti-instructors-<course>``): added
  to; and someone with an LTI identity of these LMSs who is no longer in any roster is removed.
  Members the LMS does not know (set in the platform YAML, or by hand) are left alone;
- gradebook: students added (name and e-mail from the LMS), and removed when gone from the
  roster, unless they have submissions (then kept, and reported), as the course's students page does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import requests

from grader.lti.launch import LaunchRefused, all_course_groups, course_groups, course_role, username_from
from grader.lti.registrations import Lti13Settings, ToolKey
from grader.lti.services import RETRY_DELAYS, ServiceError, ToolServices
from grader.lti.store import LtiStore


class HubGroups(Protocol):
    def members(self, group: str) -> set[str]: ...
    def add(self, group: str, users: list[str]) -> None: ...
    def remove(self, group: str, users: list[str]) -> None: ...


class HubApi:
    """Group membership through the hub's REST API, with the token of the ``lti-roster`` service."""

    def __init__(self, api_url: str, token: str):
        self.api_url = api_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.session.request(method, f"{self.api_url}/{path}", timeout=30, **kwargs)
        if response.status_code >= 400 and not (method == "POST" and response.status_code == 409):
            raise ServiceError(f"hub API {method} {path}: HTTP {response.status_code} {response.text[:200]}",
                               response.status_code)
        return response

    def members(self, group: str) -> set[str]:
        response = self.session.get(f"{self.api_url}/groups/{group}", timeout=30)
        if response.status_code == 404:
            return set()
        if response.status_code >= 400:
            raise ServiceError(f"hub API GET groups/{group}: HTTP {response.status_code}", response.status_code)
        return set(response.json().get("users", []))

    def add(self, group: str, users: list[str]) -> None:
        # The groups exist: load_groups (nbgrader's two) and load_roles (lti-instructors-<course>) make them.
        for name in users:
            self._call("POST", f"users/{name}")  # 409: the account exists
        self._call("POST", f"groups/{group}/users", json={"users": users})

    def remove(self, group: str, users: list[str]) -> None:
        self._call("DELETE", f"groups/{group}/users", json={"users": users})


class Gradebook(Protocol):
    def students(self) -> set[str]: ...
    def add_student(self, student: str, *, first_name: str, last_name: str, email: str, lms_user_id: str) -> None: ...
    def remove_student(self, student: str) -> bool: ...  # False: kept (has submissions)


class NbgraderGradebook:
    """The course's nbgrader gradebook (the URL its ``nbgrader_config.py`` names)."""

    def __init__(self, course_dir: Path):
        from nbgrader.coursedir import CourseDirectory

        from grader.grading.nbgrader_api import load_course_config

        coursedir = CourseDirectory(config=load_course_config(Path(course_dir)))
        self.db_url, self.course_id = coursedir.db_url, coursedir.course_id

    def _open(self):
        from nbgrader.api import Gradebook as NbGradebook

        return NbGradebook(self.db_url, course_id=self.course_id)

    def students(self) -> set[str]:
        with self._open() as gradebook:
            return {student.id for student in gradebook.students}

    def add_student(self, student: str, *, first_name: str, last_name: str, email: str, lms_user_id: str) -> None:
        with self._open() as gradebook:
            gradebook.update_or_create_student(student, first_name=first_name or None, last_name=last_name or None,
                                               email=email or None, lms_user_id=lms_user_id)

    def remove_student(self, student: str) -> bool:
        with self._open() as gradebook:
            if gradebook.find_student(student).submissions:
                return False
            gradebook.remove_student(student)
            return True


@dataclass
class RosterReport:
    added: dict[str, list[str]] = field(default_factory=dict)  # group or "gradebook" -> names
    removed: dict[str, list[str]] = field(default_factory=dict)
    kept_with_submissions: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # members the hub cannot name, or without a course role

    def lines(self) -> list[str]:
        out = [f"added to {where}: {', '.join(names)}" for where, names in sorted(self.added.items()) if names]
        out += [f"removed from {where}: {', '.join(names)}" for where, names in sorted(self.removed.items()) if names]
        if self.kept_with_submissions:
            out.append(f"gone from the LMS roster but kept in the gradebook (they have submissions): "
                       f"{', '.join(self.kept_with_submissions)}")
        if self.skipped:
            out.append(f"skipped: {'; '.join(self.skipped)}")
        return out or ["nothing to change"]


def sync_roster(*, course: str, settings: Lti13Settings, key: ToolKey, store: LtiStore, hub: HubGroups,
                gradebook: Gradebook, delays: Sequence[float] = RETRY_DELAYS) -> RosterReport:
    """Bring the rosters of the LMS courses linked to ``course`` into its groups and gradebook."""
    contexts = store.contexts(course)
    if not contexts:
        raise ServiceError(f"no LMS course is linked to {course} yet: launch the tool once from the LMS course")
    report = RosterReport()
    wanted: dict[str, set[str]] = {group: set() for group in all_course_groups(course)}
    students: dict[str, dict] = {}
    lti_people: set[str] = set()
    for context in contexts:
        registration = settings.by_name(context.registration)
        lti_people |= set(store.lti_user_ids(registration.name))
        for member in ToolServices(registration, context, key, delays).members():
            try:
                name = username_from({**member, "sub": member.get("user_id", "")}, settings.username_claim)
            except LaunchRefused:
                report.skipped.append(f"{member.get('user_id')}: no e-mail address in the roster")
                continue
            store.remember_identity(registration.name, str(member["user_id"]), name, email=member.get("email", ""),
                                    name=member.get("name", ""))
            lti_people.add(name)
            if member.get("status", "Active") != "Active":
                continue
            role = course_role(list(member.get("roles", [])))
            if not role:
                report.skipped.append(f"{name}: no course role")
                continue
            for group in course_groups(course, role):
                wanted[group].add(name)
            if role == "student":
                students[name] = member
    for group, names in sorted(wanted.items()):
        current = hub.members(group)
        add = sorted(names - current)
        remove = sorted((current - names) & lti_people)
        if add:
            hub.add(group, add)
            report.added[group] = add
        if remove:
            hub.remove(group, remove)
            report.removed[group] = remove
    known = gradebook.students()
    added = []
    for name, member in sorted(students.items()):
        gradebook.add_student(name, first_name=member.get("given_name", ""), last_name=member.get("family_name", ""),
                              email=member.get("email", ""), lms_user_id=str(member["user_id"]))
        if name not in known:
            added.append(name)
    report.added["gradebook"] = added
    removed = []
    for name in sorted((known - set(students)) & lti_people):
        if gradebook.remove_student(name):
            removed.append(name)
        else:
            report.kept_with_submissions.append(name)
    report.removed["gradebook"] = removed
    return report
