"""Instant feedback's JSON API, token-authenticated like the rest of the exchange.

    GET  api/courses/C/instant/me[?student_id=S]   the caller's course page as JSON   students: own; staff: any S
    GET  api/courses/C/instant/queue               the live list, queue length, pause staff
    PUT  api/courses/C/instant/queue {"paused": b}  pause or resume auto-grading      staff
"""

from __future__ import annotations

from grader.exchange.service.handlers import ExchangeHandler, refuse
from grader.exchange.service.instant.views import staff_view, student_view


class InstantHandler(ExchangeHandler):
    def course_grader(self, course_id: str):
        grader = self.instant.graders.get(course_id)
        if grader is None:
            raise refuse(404, f"instant feedback is not enabled for {course_id} (the admin's platform.yaml)")
        return grader


class MyCourseHandler(InstantHandler):
    def get(self, course_id):
        self.require_member(course_id)
        student_id = self.get_argument("student_id", None) or self.caller.name
        self.require_self_or_staff(course_id, student_id)
        self.send(student_view(store=self.store, course_id=course_id, student_id=student_id,
                               grader=self.instant.graders.get(course_id), state=self.instant.state,
                               prefix=self.settings.get("service_prefix", "/"),
                               lessons=self.instant.lessons.lessons(student_id)))


class QueueHandler(InstantHandler):
    def get(self, course_id):
        self.require_staff(course_id)
        self.send(staff_view(course_id=course_id, grader=self.course_grader(course_id), state=self.instant.state))

    def put(self, course_id):
        self.require_staff(course_id)
        paused = self.json_body().get("paused")
        if not isinstance(paused, bool):
            raise refuse(400, "'paused' must be true or false")
        grader = self.course_grader(course_id)
        grader.set_paused(paused)
        self.send(staff_view(course_id=course_id, grader=grader, state=self.instant.state))


def instant_api_routes(prefix: str) -> list[tuple[str, type]]:
    api = prefix.rstrip("/") + "/api/courses"
    return [
        (rf"{api}/([^/]+)/instant/me", MyCourseHandler),
        (rf"{api}/([^/]+)/instant/queue", QueueHandler),
    ]
