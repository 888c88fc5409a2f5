"""The LTI Advantage services, called as the tool: pylti1p3's NRPS and AGS clients, with retries.

pylti1p3 gets the OAuth 2 access token (a client assertion signed with the tool's key, RFC 7523)
and speaks the services' media types; this module adds what a batch job needs: retries with
back-off on network errors, 429 and 5xx, and the platform's HTTP status as a plain number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import requests
from pylti1p3.assignments_grades import AssignmentsGradesService
from pylti1p3.exception import LtiException, LtiServiceException
from pylti1p3.grade import Grade
from pylti1p3.lineitem import LineItem
from pylti1p3.names_roles import NamesRolesProvisioningService
from pylti1p3.service_connector import ServiceConnector

from grader.lti.registrations import Registration, ToolKey, pylti_registration
from grader.lti.store import Context

RETRY_DELAYS = (1.0, 2.0, 4.0)
AGS_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"


class ServiceError(Exception):
    """The LMS refused or did not answer; ``status`` is its HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


def _status(error: Exception) -> int:
    response = getattr(error, "response", None)
    return int(response.status_code) if response is not None else 0


def with_retries(call: Callable[[], object], *, delays: Sequence[float] = RETRY_DELAYS, what: str = "") -> tuple[object, int]:
    """``call()`` and the number of attempts it took; retried after each delay on a network error,
    429 or a 5xx; any other refusal (4xx) is raised at once as :class:`ServiceError`."""
    attempts = 0
    while True:
        attempts += 1
        try:
            return call(), attempts
        except (LtiServiceException, requests.RequestException) as error:
            status = _status(error)
            retriable = status == 0 or status == 429 or status >= 500
            if not retriable or attempts > len(delays):
                raise ServiceError(f"{what}: {'HTTP ' + str(status) if status else error}", status) from error
            time.sleep(delays[attempts - 1])
        except LtiException as error:
            raise ServiceError(f"{what}: {error}") from error


@dataclass
class ToolServices:
    """The NRPS and AGS endpoints of one LMS course, called with one registration's credentials."""

    registration: Registration
    context: Context
    key: ToolKey
    delays: Sequence[float] = RETRY_DELAYS

    def __post_init__(self):
        self.connector = ServiceConnector(pylti_registration(self.registration, self.key))

    def members(self) -> list[dict]:
        if not self.context.memberships_url:
            raise ServiceError(f"{self.registration.name}: LMS course {self.context.context_id} gave no roster "
                               "service (NRPS) at launch; enable 'Names and roles' for the tool in the LMS")
        service = NamesRolesProvisioningService(self.connector, {
            "context_memberships_url": self.context.memberships_url, "service_versions": ["2.0"]})
        members, _ = with_retries(service.get_members, delays=self.delays, what="roster (NRPS)")
        return list(members)

    def _ags(self) -> AssignmentsGradesService:
        if not self.context.lineitems_url:
            raise ServiceError(f"{self.registration.name}: LMS course {self.context.context_id} gave no grade "
                               "service (AGS) at launch; enable 'Assignment and grade services' for the tool")
        return AssignmentsGradesService(self.connector, {"scope": list(self.context.ags_scopes),
                                                         "lineitems": self.context.lineitems_url})

    def line_item(self, assignment: str, *, label: str, score_maximum: float, known_url: str = "") -> LineItem | None:
        """The assignment's line item: the one its link came with at launch (``known_url``), else the
        one deep linking made (``resourceId`` = the assignment), else one with its tag, else a new
        one when the LMS lets the tool create line items."""
        ags = self._ags()
        if known_url:
            item, _ = with_retries(lambda: ags.get_lineitem(known_url), delays=self.delays, what="line item (AGS)")
            if not item.get_id():
                item.set_id(known_url)
            return item
        found, _ = with_retries(lambda: ags.find_lineitem_by_resource_id(assignment) or ags.find_lineitem_by_tag(assignment),
                                delays=self.delays, what="line items (AGS)")
        if found is not None or not ags.can_create_lineitem():
            return found
        wanted = LineItem().set_label(label).set_score_maximum(score_maximum).set_resource_id(assignment).set_tag(assignment)
        created, _ = with_retries(lambda: ags.find_or_create_lineitem(wanted, find_by="resource_id"),
                                  delays=self.delays, what="creating a line item (AGS)")
        return created

    def post_score(self, line_item: LineItem, *, lti_user_id: str, score_given: float, score_maximum: float,
                   timestamp: str) -> int:
        """Post one score; returns the number of attempts it took."""
        ags = self._ags()
        grade = (Grade().set_user_id(lti_user_id).set_score_given(score_given).set_score_maximum(score_maximum)
                 .set_timestamp(timestamp).set_activity_progress("Completed").set_grading_progress("FullyGraded"))
        _, attempts = with_retries(lambda: ags.put_grade(grade, line_item), delays=self.delays,
                                   what=f"score of {lti_user_id} (AGS)")
        return attempts
