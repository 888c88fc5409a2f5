"""The exchange's HTTP API (JSON), every request authenticated with the hub.

Routes, under the service's prefix (``/services/nbgrader-exchange/``)::

    GET    api/courses                                         courses the caller is in
    GET    api/courses/C/assignments                           released assignments      staff, students
    GET    api/courses/C/assignments/A                         the files, to fetch       staff, students
    PUT    api/courses/C/assignments/A[?force=1]               release                   staff
    DELETE api/courses/C/assignments/A                         unrelease                 staff
    POST   api/courses/C/assignments/A/submissions             submit, as the caller     students
    GET    api/courses/C/submissions[?assignment_id&student_id] list submissions          staff; students: own
    GET    api/courses/C/submissions/S/A/ID                    a submission's files      staff; S itself
    GET    api/courses/C/feedback/S/A                          feedback of S             staff; S itself
    PUT    api/courses/C/feedback/S/A                          release feedback          staff

Instant feedback adds its own routes (:mod:`grader.exchange.service.instant.api`) and pages
(:mod:`grader.exchange.service.instant.pages`); a submission's answer then says whether it was
queued for grading or held by the rate limit (``instant_feedback``).

Bodies that carry files are ``{"files": {"relative/path": "<base64>"}}``; uploads larger than the
configured limit are refused with 413 before they are read. Submissions are never changed or
deleted through the API: any other method on one answers 403.
"""

from __future__ import annotations

import json

from tornado import web

from grader.exchange.service.access import Caller
from grader.exchange.service.instant.intake import take_submission
from grader.exchange.service.storage import StorageError, decode_files


def refuse(status: int, message: str) -> StorageError:
    """An error answered as ``{"status", "message"}``; the message may quote ids from the URL."""
    return StorageError(status, message)


# Base64 in JSON: 4/3 of the files plus names and punctuation.
ENCODING_SLACK = 4 / 3


@web.stream_request_body
class ExchangeHandler(web.RequestHandler):
    """Authenticates every request with the hub and answers errors as JSON ``{"message": ...}``."""

    caller: Caller

    def initialize(self, *, store, hub_auth, groups, courses, max_upload_bytes, instant):
        self.store = store
        self.instant = instant  # grader.exchange.service.instant.feature.InstantFeedback
        self.hub_auth = hub_auth
        self.group_lookup = groups
        self.known_courses = courses
        self.max_upload_bytes = max_upload_bytes
        self._body = bytearray()

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_upload_bytes * ENCODING_SLACK) + (1 << 20)

    def check_xsrf_cookie(self):
        # Token-authenticated API only (no cookies are ever read), so cross-site forgery has no session to ride.
        return None

    async def prepare(self):
        self.set_header("Content-Type", "application/json")
        declared = int(self.request.headers.get("Content-Length") or 0)
        if declared > self.max_body_bytes:
            raise refuse(413, f"upload too large: {declared} bytes (at most {self.max_upload_bytes} bytes of files)")
        self.request.connection.set_max_body_size(self.max_body_bytes)
        token = self.hub_auth.get_token(self, in_cookie=False)
        if not token:
            raise refuse(401, "no token: send 'Authorization: token <hub API token>'")
        model = await self.hub_auth.user_for_token(token, sync=False)
        if not model:
            raise refuse(403, "the hub does not know this token")
        scopes = self.hub_auth.access_scopes
        if scopes and not self.hub_auth.check_scopes(scopes, model):
            raise refuse(403, f"this token lacks the scope {sorted(scopes)[0]!r}")
        kind = model.get("kind", "user")
        groups = await self.group_lookup.groups(model["name"]) if kind == "user" else frozenset()
        self.caller = Caller(name=model["name"], kind=kind, groups=groups)

    def data_received(self, chunk: bytes) -> None:
        self._body += chunk
        if len(self._body) > self.max_body_bytes:
            raise refuse(413, f"upload too large (at most {self.max_upload_bytes} bytes of files)")

    def json_body(self) -> dict:
        try:
            body = json.loads(bytes(self._body) or b"{}")
        except ValueError as error:
            raise refuse(400, f"the body is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise refuse(400, "the body must be a JSON object")
        return body

    def uploaded_files(self):
        return decode_files(self.json_body().get("files"), max_bytes=self.max_upload_bytes)

    def send(self, value, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(value))

    def write_error(self, status_code, **kwargs):
        error = kwargs.get("exc_info", (None, None, None))[1]
        message = str(error) if isinstance(error, StorageError) else self._reason
        if self.request.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.request.headers:
            # Refused before its body was read (an upload too large, a bad token): tornado closes
            # the connection after this answer, so say so. Otherwise the proxy keeps it for its
            # next request and that request fails (the hub's 503 page, not ours).
            self.set_header("Connection", "close")
        self.finish(json.dumps({"status": status_code, "message": message}))

    # --- authorisation -------------------------------------------------------------------------

    def course(self, course_id: str) -> str:
        if course_id not in self.known_courses:
            raise refuse(404, f"no course {course_id!r} on this exchange")
        return course_id

    def require_staff(self, course_id: str) -> None:
        if not self.caller.is_staff(self.course(course_id)):
            raise refuse(403, f"{self.caller.name} is not an instructor or grader of {course_id}")

    def require_member(self, course_id: str) -> None:
        course = self.course(course_id)
        if not (self.caller.is_staff(course) or self.caller.is_student(course)):
            raise refuse(403, f"{self.caller.name} is not in course {course_id}")

    def require_self_or_staff(self, course_id: str, student_id: str) -> None:
        course = self.course(course_id)
        if self.caller.is_staff(course):
            return
        if self.caller.is_student(course) and self.caller.name == student_id:
            return
        raise refuse(403, f"{self.caller.name} may not read {student_id}'s work in {course_id}")


class CoursesHandler(ExchangeHandler):
    def get(self):
        self.send({"name": self.caller.name, "kind": self.caller.kind,
                   "courses": [{"course_id": course, "staff": self.caller.is_staff(course)}
                               for course in self.caller.courses(self.known_courses)]})


class AssignmentsHandler(ExchangeHandler):
    def get(self, course_id):
        self.require_member(course_id)
        self.send(self.store.released_assignments(course_id))


class AssignmentHandler(ExchangeHandler):
    def get(self, course_id, assignment_id):
        self.require_member(course_id)
        self.send({"course_id": course_id, "assignment_id": assignment_id,
                   "files": self.store.released_files(course_id, assignment_id)})

    def put(self, course_id, assignment_id):
        self.require_staff(course_id)
        force = self.get_argument("force", "") in ("1", "true", "yes")
        self.store.release(course_id, assignment_id, self.uploaded_files(), force=force)
        self.send({"course_id": course_id, "assignment_id": assignment_id}, status=201)

    def delete(self, course_id, assignment_id):
        self.require_staff(course_id)
        self.store.unrelease(course_id, assignment_id)
        self.send({"course_id": course_id, "assignment_id": assignment_id})


class SubmitHandler(ExchangeHandler):
    def post(self, course_id, assignment_id):
        if not self.caller.is_student(self.course(course_id)):
            raise refuse(403, f"{self.caller.name} is not a student of {course_id}")
        # The student is the caller the hub identified; any student id in the request is ignored.
        submission = self.store.submit(course_id, self.caller.name, assignment_id, self.uploaded_files())
        answer = submission.as_json(feedback=None)
        # Instant feedback (when on): queued for grading, or held by the rate limit; the student is told which.
        instant = take_submission(self.instant.graders, self.instant.state, submission)
        if instant is not None:
            answer["instant_feedback"] = instant
        self.send(answer, status=201)


class SubmissionsHandler(ExchangeHandler):
    def get(self, course_id):
        self.require_member(course_id)
        student_id = self.get_argument("student_id", None) or None
        if not self.caller.is_staff(course_id):
            if student_id not in (None, self.caller.name):
                raise refuse(403, f"{self.caller.name} may not list {student_id}'s submissions")
            student_id = self.caller.name
        found = self.store.submissions(course_id, student_id=student_id,
                                       assignment_id=self.get_argument("assignment_id", None) or None)
        self.send([s.as_json(feedback=self.store.feedback_checksums(s)) for s in found])


class SubmissionHandler(ExchangeHandler):
    def get(self, course_id, student_id, assignment_id, submission_id):
        self.require_self_or_staff(course_id, student_id)
        submission = self.store.submission(course_id, student_id, assignment_id, submission_id)
        self.send({**submission.as_json(feedback=self.store.feedback_checksums(submission)),
                   "files": self.store.submission_files(submission)})

    def _immutable(self, *args):
        raise refuse(403, "submissions are never changed or deleted; submit again to make a new one")

    put = post = delete = patch = _immutable


class FeedbackHandler(ExchangeHandler):
    def get(self, course_id, student_id, assignment_id):
        self.require_self_or_staff(course_id, student_id)
        self.send(self.store.feedback(course_id, student_id, assignment_id))

    def put(self, course_id, student_id, assignment_id):
        self.require_staff(course_id)
        body = self.json_body()
        timestamp = body.get("timestamp")
        if not isinstance(timestamp, str) or not timestamp:
            raise refuse(400, "'timestamp' (the submission's timestamp.txt) is required")
        submission = self.store.release_feedback(course_id, student_id, assignment_id, timestamp,
                                                 decode_files(body.get("files"), max_bytes=self.max_upload_bytes))
        self.send({"student_id": student_id, "assignment_id": assignment_id,
                   "submission_id": submission.submission_id}, status=201)


_PART = r"([^/]+)"


def routes(prefix: str) -> list[tuple[str, type]]:
    api = prefix.rstrip("/") + "/api/courses"
    return [
        (api, CoursesHandler),
        (rf"{api}/{_PART}/assignments", AssignmentsHandler),
        (rf"{api}/{_PART}/assignments/{_PART}", AssignmentHandler),
        (rf"{api}/{_PART}/assignments/{_PART}/submissions", SubmitHandler),
        (rf"{api}/{_PART}/submissions", SubmissionsHandler),
        (rf"{api}/{_PART}/submissions/{_PART}/{_PART}/{_PART}", SubmissionHandler),
        (rf"{api}/{_PART}/feedback/{_PART}/{_PART}", FeedbackHandler),
    ]
