"""The course pages, behind the hub's login (OAuth): a student's own page and the instructor's live list.

    courses/C/                          the caller's course page (a student's own; staff: ?student_id=S)
    courses/C/instructor                the live list of submissions and the pause switch (staff)
    courses/C/feedback/S/A/ID/[NB.html]  a submission's feedback pages (S and staff)

A hub page served by this service rather than a JupyterLab panel: a student reads it without
starting a server (at a deadline, when servers are slowest to start), on a phone, or from a link
in the LMS; it needs no frontend build or extension in the users' images; and the data behind it
is the same JSON the API serves. The pages refresh their content every two seconds.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import quote

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from grader.exchange.service.access import Caller
from grader.exchange.service.instant.views import staff_view, student_view
from grader.exchange.service.storage import StorageError, check_id

REFRESH_MS = 2000
_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}.muted{color:#666}
.graded{color:#060}.held,.error{color:#a40}"""
# The hub's login cookie counts on a script's request only with the page's xsrf token beside it
# (JupyterHub's rule for services: any request but a page navigation).
_REFRESH = """<script>
setInterval(async () => {
  const answer = await fetch(location.href, {headers: {"X-Fragment": "1", "X-XSRFToken": %s},
                                             credentials: "same-origin", redirect: "error"});
  if (answer.ok) document.getElementById("content").innerHTML = await answer.text();
}, %d);
</script>"""


def e(value) -> str:
    return html.escape("" if value is None else str(value))


def _score(item: dict) -> str:
    if "score" not in item:
        return ""
    text = f"{item['score']:g} / {item['max_score']:g} ({item['score_of']})"
    if item.get("late_penalty"):
        text += f", late penalty {item['late_penalty']:g}"
    return text


def render_student(view: dict) -> str:
    parts = [f"<p class=muted>As of {e(view['now'])} (UTC).</p>"]
    if not view["assignments"]:
        parts.append("<p>No assignments released yet.</p>")
    for a in view["assignments"]:
        parts.append(f"<h2>{e(a['assignment_id'])}</h2><p>Due: {e(a['due'] or 'no due date')}. ")
        if a["instant_feedback"]:
            policy = a["policy"]
            shown = {"visible": "your score on the visible tests", "full": "your full score",
                     "nothing": "that it was graded; scores come with the feedback your instructor releases"}[policy["show"]]
            parts.append(f"Submissions are graded as soon as they arrive; you see {e(shown)}. ")
            if policy["rate_limit"]:
                parts.append(f"Graded submissions allowed: {e(policy['rate_limit'])}; "
                             f"<span class=attempts>attempts left: {e(a['attempts_left'])}</span>. ")
                if a["next_graded_at"]:
                    parts.append(f"<span class=next>Next graded attempt allowed at {e(a['next_graded_at'])}.</span> ")
        else:
            parts.append("Graded by your instructor after the deadline. ")
        parts.append("</p>")
        if not a["submissions"]:
            parts.append("<p class=muted>Not submitted yet.</p>")
            continue
        parts.append("<table class=submissions><tr><th>Submitted</th><th>Status</th><th>Score</th><th>Tests</th><th>Feedback</th></tr>")
        for s in reversed(a["submissions"]):
            tests = "".join(
                f"<li>{e(t['test'])}: {e(t['score'])}/{e(t['max_score'])} {'passed' if t['passed'] else 'failed'}"
                f"{' — ' + e(t['error']) if t.get('error') else ''}</li>" for t in s.get("tests", []))
            status = s["status_text"] + (" (late)" if s["late"] else "") + (
                "; flagged for your instructor's review" if s.get("flagged") else "")
            link = f"<a href='{e(s['feedback_url'])}'>feedback</a>" if s["feedback_url"] else ""
            parts.append(f"<tr data-submission='{e(s['submission_id'])}'><td>{e(s['submitted_at'])}</td>"
                         f"<td class='status {e(s['status'])}'>{e(status)}</td><td class=score>{e(_score(s))}</td>"
                         f"<td><ul>{tests}</ul></td><td>{link}</td></tr>")
        parts.append("</table>")
    lessons = view["lessons"]
    if lessons is None:
        parts.append("<h2>Lessons</h2><p class=muted>Which lessons you opened is not known here.</p>")
    else:
        items = "".join(f"<li>{e(lesson)}</li>" for lesson in lessons["opened"])
        parts.append(f"<h2>Lessons</h2><p class=lessons>Opened {len(lessons['opened'])} of {lessons['total']}.</p>"
                     f"<ul>{items}</ul>")
    return "".join(parts)


def render_staff(view: dict, xsrf_form: str) -> str:
    paused = view["paused"]
    parts = [f"<p>Queue: <b class=queue-length>{view['queue_length']}</b> waiting, {view['grading_now']} being graded, "
             f"{view['workers']} workers. Auto-grading is <b class=paused>{'paused' if paused else 'running'}</b>.</p>",
             f"<form method=post>{xsrf_form}<input type=hidden name=paused value={'0' if paused else '1'}>"
             f"<button type=submit>{'Resume' if paused else 'Pause'} auto-grading</button></form>"]
    if view["policy_error"]:
        parts.append(f"<p class=error>Policy file: {e(view['policy_error'])}</p>")
    parts.append("<table class=live><tr><th>Student</th><th>Assignment</th><th>Submitted</th><th>Status</th>"
                 "<th>Score</th><th>Visible</th><th>Flags</th><th>Note</th></tr>")
    for s in view["submissions"]:
        score = "" if s["score"] is None else f"{s['score']:g} / {s['max_score']:g}"
        flags = "; ".join(f"{f['kind']}: {f['reason']}" for f in s["flags"])
        parts.append(f"<tr><td>{e(s['student_id'])}</td><td>{e(s['assignment_id'])}</td><td>{e(s['submitted_at'])}</td>"
                     f"<td class='{e(s['status'])}'>{e(s['status'])}</td><td>{e(score)}</td><td>{e(s['visible_score'])}</td>"
                     f"<td>{e(flags)}</td><td>{e(s['message'])}</td></tr>")
    parts.append("</table>")
    return "".join(parts)


class PageHandler(HubOAuthenticated, web.RequestHandler):
    def initialize(self, *, store, groups, courses, instant):
        self.store = store
        self.group_lookup = groups
        self.known_courses = courses
        self.instant = instant

    async def caller(self, course_id: str) -> Caller:
        user = self.current_user
        if course_id not in self.known_courses:
            raise web.HTTPError(404, f"no course {course_id!r} here")
        caller = Caller(name=user["name"], kind="user", groups=await self.group_lookup.groups(user["name"]))
        if not (caller.is_staff(course_id) or caller.is_student(course_id)):
            raise web.HTTPError(403, f"{caller.name} is not in course {course_id}")
        return caller

    def page(self, title: str, content: str) -> None:
        if self.request.headers.get("X-Fragment"):
            self.finish(content)
            return
        self.finish(f"<!doctype html><html><head><meta charset=utf-8><title>{e(title)}</title><style>{_STYLE}</style>"
                    f"</head><body><h1>{e(title)}</h1><div id=content>{content}</div>"
                    + _REFRESH % (json.dumps(self.xsrf_token.decode()).replace("<", "\\u003c"), REFRESH_MS)
                    + "</body></html>")


class StudentPage(PageHandler):
    @web.authenticated
    async def get(self, course_id):
        caller = await self.caller(course_id)
        student_id = self.get_argument("student_id", None) if caller.is_staff(course_id) else None
        student_id = student_id or caller.name
        view = student_view(store=self.store, course_id=course_id, student_id=student_id,
                            grader=self.instant.graders.get(course_id), state=self.instant.state,
                            prefix=self.settings["service_prefix"], lessons=self.instant.lessons.lessons(student_id))
        content = render_student(view)
        if caller.is_staff(course_id) and course_id in self.instant.graders:
            content = (f"<p><a href='{e(self.settings['service_prefix'])}courses/{e(course_id)}/instructor'>"
                       f"Submissions as they are graded</a> (staff)</p>") + content
        self.page(f"{course_id}: {student_id}", content)


class InstructorPage(PageHandler):
    def grader(self, course_id):
        grader = self.instant.graders.get(course_id)
        if grader is None:
            raise web.HTTPError(404, f"instant feedback is not enabled for {course_id}")
        return grader

    async def staff(self, course_id) -> None:
        if not (await self.caller(course_id)).is_staff(course_id):
            raise web.HTTPError(403, f"only the staff of {course_id} see its queue")

    @web.authenticated
    async def get(self, course_id):
        await self.staff(course_id)
        view = staff_view(course_id=course_id, grader=self.grader(course_id), state=self.instant.state)
        self.page(f"{course_id}: submissions as they are graded", render_staff(view, self.xsrf_form_html()))

    @web.authenticated
    async def post(self, course_id):
        await self.staff(course_id)
        self.grader(course_id).set_paused(self.get_body_argument("paused", "") == "1")
        self.redirect(self.request.path)


class FeedbackPage(PageHandler):
    @web.authenticated
    async def get(self, course_id, student_id, assignment_id, submission_id, name):
        caller = await self.caller(course_id)
        if not (caller.is_staff(course_id) or caller.name == student_id):
            raise web.HTTPError(403, f"{caller.name} may not read {student_id}'s feedback")
        try:
            submission = self.store.submission(course_id, student_id, assignment_id, check_id(submission_id, "submission id"))
        except StorageError as error:
            raise web.HTTPError(404, str(error)) from error
        # Feedback the instructor released wins over the instant one of the same submission.
        folders = [self.store.root / course_id / "feedback" / student_id / assignment_id / submission.submission_id]
        grader = self.instant.graders.get(course_id)
        policy = grader.policy(assignment_id) if grader else None
        if grader and policy and policy.show == "full":
            folders.append(grader.feedback_root / student_id / assignment_id / submission.submission_id)
        folder = next((f for f in folders if f.is_dir() and any(f.glob("*.html"))), None)
        if folder is None:
            raise web.HTTPError(404, "no feedback for this submission yet")
        if not name:
            links = "".join(f"<li><a href='{quote(p.name)}'>{e(p.stem)}</a></li>" for p in sorted(folder.glob("*.html")))
            self.finish(f"<!doctype html><meta charset=utf-8><title>Feedback</title><ul>{links}</ul>")
            return
        path = folder / Path(name).name
        if not name.endswith(".html") or not path.is_file():
            raise web.HTTPError(404, f"no feedback page {name!r}")
        # Shown under the hub's origin: nothing in it may run (it quotes what the student's code printed).
        self.set_header("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:")
        self.finish(path.read_bytes())


def page_routes(prefix: str, handler_args: dict) -> list:
    base = prefix.rstrip("/") + "/courses"
    part = r"([^/]+)"
    return [
        (rf"{base}/{part}/?", StudentPage, handler_args),
        (rf"{base}/{part}/instructor", InstructorPage, handler_args),
        (rf"{base}/{part}/feedback/{part}/{part}/{part}/([^/]*)", FeedbackPage, handler_args),
    ]
