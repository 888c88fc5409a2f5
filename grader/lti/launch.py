"""What a validated LTI launch means on the hub: who, which course, which role, where to land.

Pure functions of the id_token's claims (already verified by the authenticator), so they are
tested without a hub. Roles (LTI 1.3, "Role vocabularies"): a TeachingAssistant grades, an
Instructor, Administrator or ContentDeveloper of the context teaches, a Learner is a student;
anything else gets no course group (and is refused: nothing to open).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote

from grader.lti.registrations import Registration

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
ROLES_CLAIM = CLAIM + "roles"
CONTEXT_CLAIM = CLAIM + "context"
CUSTOM_CLAIM = CLAIM + "custom"
DEPLOYMENT_CLAIM = CLAIM + "deployment_id"
MESSAGE_TYPE_CLAIM = CLAIM + "message_type"
RESOURCE_LINK_CLAIM = CLAIM + "resource_link"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
DEEP_LINKING_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"

TEACHING_ASSISTANT = "TeachingAssistant"
INSTRUCTOR_ROLES = {"Instructor", "Administrator", "ContentDeveloper"}
LEARNER_ROLES = {"Learner"}
COURSE_ROLES = ("instructor", "grader", "student")


class LaunchRefused(Exception):
    """A launch that is valid LTI but that the hub cannot honour; the message says why, for the person."""


def course_role(roles: list[str]) -> str:
    """"instructor", "grader", "student" or "" for the LTI role URIs of a launch or a roster member.

    Context roles only (``.../membership#Instructor``, ``.../membership/Instructor#TeachingAssistant``,
    or the bare names some platforms send); institution roles say nothing about this course.
    """
    names = set()
    for role in roles:
        if "/institution/" in role or "/system/" in role:
            continue
        names.add(role.rsplit("#", 1)[-1] if "#" in role else role.rsplit("/", 1)[-1])
    if TEACHING_ASSISTANT in names:
        return "grader"
    if names & INSTRUCTOR_ROLES:
        return "instructor"
    if names & LEARNER_ROLES:
        return "student"
    return ""


def lti_instructor_group(course: str) -> str:
    """The hub group given the ``instructor-<course>`` role for LMS instructors."""
    return f"lti-instructors-{course}"


def course_groups(course: str, role: str) -> set[str]:
    """The hub groups of one course role (nbgrader's group names, and the instructors' group)."""
    return {"student": {f"nbgrader-{course}"}, "grader": {f"formgrade-{course}"},
            "instructor": {f"formgrade-{course}", lti_instructor_group(course)}}.get(role, set())


def all_course_groups(course: str) -> set[str]:
    return set().union(*(course_groups(course, role) for role in COURSE_ROLES))


def username_from(claims: Mapping[str, Any], username_claim: str) -> str:
    """The hub user name: the e-mail address (lower case) or the LMS's user id (``sub``)."""
    if username_claim == "email":
        value = str(claims.get("email") or "").strip().lower()
        if not value:
            raise LaunchRefused("the LMS sent no e-mail address; ask its administrator to share it with this tool "
                                "(Moodle: Privacy, Share launcher's email; Canvas: privacy level public)")
        return value
    return str(claims["sub"])


@dataclass(frozen=True)
class Launch:
    registration: str
    username: str
    lti_user_id: str
    course: str
    role: str
    context_id: str
    context_title: str
    deployment_id: str
    message_type: str
    resource_link_id: str
    custom: Mapping[str, Any]
    memberships_url: str
    lineitems_url: str
    lineitem_url: str
    ags_scopes: tuple[str, ...]

    @property
    def is_deep_linking(self) -> bool:
        return self.message_type == "LtiDeepLinkingRequest"


def read_launch(claims: Mapping[str, Any], registration: Registration, *, username_claim: str,
                course_ids: set[str]) -> Launch:
    """The launch of verified ``claims`` from ``registration``; :class:`LaunchRefused` says why not."""
    deployment = str(claims.get(DEPLOYMENT_CLAIM, ""))
    if deployment not in registration.deployment_ids:
        raise LaunchRefused(f"deployment {deployment!r} of {registration.issuer} is not registered on this hub "
                            f"(registration {registration.name}: {', '.join(registration.deployment_ids)})")
    context = claims.get(CONTEXT_CLAIM) or {}
    custom = claims.get(CUSTOM_CLAIM) or {}
    course = registration.course_for(str(context.get("id", "")), custom)
    if course not in course_ids:
        raise LaunchRefused(f"this LMS course ({context.get('title') or context.get('id') or 'no context'}) is not "
                            f"linked to a course on the hub; set course: in registration {registration.name}, "
                            f"or the custom parameter course=<id> on the link")
    role = course_role(list(claims.get(ROLES_CLAIM) or []))
    if not role:
        raise LaunchRefused("your role in this LMS course is neither Instructor, TeachingAssistant nor Learner")
    ags = claims.get(AGS_CLAIM) or {}
    return Launch(
        registration=registration.name, username=username_from(claims, username_claim), lti_user_id=str(claims["sub"]),
        course=course, role=role, context_id=str(context.get("id", "")), context_title=str(context.get("title", "")),
        deployment_id=deployment, message_type=str(claims.get(MESSAGE_TYPE_CLAIM, "")),
        resource_link_id=str((claims.get(RESOURCE_LINK_CLAIM) or {}).get("id", "")), custom=dict(custom),
        memberships_url=str((claims.get(NRPS_CLAIM) or {}).get("context_memberships_url", "")),
        lineitems_url=str(ags.get("lineitems", "")), lineitem_url=str(ags.get("lineitem", "")),
        ags_scopes=tuple(ags.get("scope", ())))


def landing_path(launch: Launch) -> str:
    """Where the person lands in their server (relative to ``/user/<name>/``): the link's lesson or
    assignment (custom ``lesson=<path under courses/>`` or ``assignment=<id>``), else the course folder."""
    lesson = str(launch.custom.get("lesson", "")).strip("/")
    assignment = str(launch.custom.get("assignment", "")).strip("/")
    if lesson and ".." not in lesson.split("/"):
        return "lab/tree/courses/" + quote(lesson)
    if assignment and "/" not in assignment and assignment != "..":
        # nbgrader's Assignment List fetches into <course>/<assignment>/ of the home.
        return f"lab/tree/{quote(launch.course)}/{quote(assignment)}"
    return "lab/tree/courses"
