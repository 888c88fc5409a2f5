"""Who may do what on the hub: JupyterHub roles built from the settings, least privilege first.

Every user already holds JupyterHub's default ``user`` role (``self``: their own server, tokens and
profile). On top of that:

- ``student``: nothing more. Given to every ``nbgrader-<course>`` group, so it is visible who is a
  student; which courses they see is decided by those groups (nbgrader's JupyterHub plugin).
- ``grader-<course>``: opens that course's formgrader. Given to ``formgrade-<course>``, the group
  nbgrader's documentation names, which holds the course's instructors and graders.
- ``instructor-<course>``: also lists and reads the course's students and adds or removes
  students of that course (the membership of ``nbgrader-<course>``), not of any other.
- ``cohort-admin``: reads users and groups; with seats enabled also opens the seats service and
  holds its custom scopes ``custom:seats:read`` and ``custom:seats:write`` (which organisations
  they manage is the seats database's business, :mod:`grader.seats`).
- ``admin``: JupyterHub's own role, for the accounts in ``admins``.

The course's formgrader service itself gets no role: it only checks who opens it (the hub's
OAuth, ``access:services``), and its student form writes the gradebook, not the hub's groups.
Enrolling in the hub (``nbgrader db student add`` with JupyterHub's plugin) runs with the
instructor's own token, which ``instructor-<course>`` allows (nbgrader issues #1533, #1594).
"""

from __future__ import annotations

from grader.hub.services.exchange import exchange_token_scopes
from grader.hub.settings import CourseSettings, HubSettings

COHORT_ADMIN_SCOPES = ["list:users", "read:users:name", "read:users:groups", "list:groups", "read:groups"]
# Declared by grader.hub.services.seats (c.JupyterHub.custom_scopes); the seats service checks them.
SEATS_SERVICE = "seats"
SEATS_READ = "custom:seats:read"
SEATS_WRITE = "custom:seats:write"
SEATS_MANAGER_SCOPES = [f"access:services!service={SEATS_SERVICE}", SEATS_READ, SEATS_WRITE]


def cohort_admin_scopes(settings: HubSettings) -> list[str]:
    return COHORT_ADMIN_SCOPES + (SEATS_MANAGER_SCOPES if settings.seats.enabled else [])


def grader_scopes(course: CourseSettings) -> list[str]:
    service = course.course_id
    # list/read:services let the Lab's course list (on an instructor's own server) find the formgrader.
    return [f"access:services!service={service}", f"list:services!service={service}",
            f"read:services!service={service}"]


def instructor_scopes(course: CourseSettings) -> list[str]:
    students = course.student_group
    return [f"list:users!group={students}", f"read:users!group={students}", f"groups!group={students}"]


def platform_roles(settings: HubSettings) -> list[dict]:
    """The ``load_roles`` list: platform-wide roles, then each course's."""
    roles = [
        {
            "name": "student",
            "description": "A student: their own server and nothing more",
            "scopes": ["self"],
            "groups": [course.student_group for course in settings.courses],
        },
        {
            "name": "cohort-admin",
            "description": "Reads users and groups; manages their organisation's seats when seats are enabled",
            "scopes": cohort_admin_scopes(settings),
            "users": list(settings.cohort_admins),
        },
    ]
    for course in settings.courses:
        roles += [
            {
                "name": f"grader-{course.course_id}",
                "description": f"Open the {course.course_id} formgrader",
                "scopes": grader_scopes(course),
                "groups": [course.formgrade_group],
            },
            {
                "name": f"instructor-{course.course_id}",
                "description": f"See and enrol the students of {course.course_id}",
                "scopes": instructor_scopes(course),
                "users": list(course.instructors),
            },
        ]
    return roles


def platform_groups(settings: HubSettings) -> dict[str, dict]:
    """The ``load_groups`` mapping: nbgrader's two groups per course, then the settings' own groups."""
    groups = {}
    for course in settings.courses:
        groups[course.formgrade_group] = {"users": list(dict.fromkeys([*course.instructors, *course.graders]))}
        groups[course.student_group] = {"users": list(course.students)}
    for name, users in settings.groups:
        members = groups.get(name, {}).get("users", [])
        groups[name] = {"users": list(dict.fromkeys([*members, *users]))}
    return groups


def server_token_scopes(settings: HubSettings) -> list[str]:
    """What a user's server token may do (one machine and Kubernetes alike)."""
    return [
        "users:activity!user",
        "access:servers!server",
        # The server's own token may also read its user's name and groups: nbgrader's JupyterHub
        # plugin needs them to list only the user's courses.
        "read:users:name!user",
        "read:users:groups!user",
        # Kept only where the user holds them (instructors, graders): the Lab's course list.
        "list:services",
        "read:services",
        # With the HTTP exchange: let nbgrader in the server call the exchange service.
        *exchange_token_scopes(settings),
        # With seats: let the server report its user's lessons run (grader.seats.lesson_reports).
        *([f"access:services!service={SEATS_SERVICE}"] if settings.seats.enabled else []),
    ]
