"""Submit an assignment to the HTTP exchange, as the user the hub says the caller is."""

from __future__ import annotations

import os

from nbgrader.exchange.abc import ExchangeSubmit

from grader.exchange.plugins.base import HttpExchange


class Submit(HttpExchange, ExchangeSubmit):
    """Upload the student's folder; the service names and dates the submission, not this client."""

    def init_src(self):
        self.course_id = self.require_course_id()
        self.src_path = str(self.local_assignment_dir(self.course_id, self.coursedir.assignment_id))
        if not os.path.isdir(self.src_path):
            self.fail(f"Assignment not found at: {self.src_path}")

    def init_dest(self):
        released = self.call("GET", "courses", self.course_id, "assignments")
        matches = [entry for entry in released if entry["assignment_id"] == self.coursedir.assignment_id]
        if not matches:
            self.fail(f"Assignment {self.coursedir.assignment_id} is not released in {self.course_id}")
        self.released_notebooks = set(matches[0]["notebooks"])

    def check_notebooks(self, files: dict[str, str]) -> None:
        submitted = {name[:-len(".ipynb")] for name in files if name.endswith(".ipynb") and "/" not in name}
        missing, extra = sorted(self.released_notebooks - submitted), sorted(submitted - self.released_notebooks)
        if missing and self.strict:
            self.fail(f"Assignment {self.coursedir.assignment_id} not submitted. "
                      f"There are missing notebooks for the submission: {', '.join(missing)}")
        if missing or extra:
            self.log.warning("Possible missing notebooks (%s) and/or extra notebooks (%s) submitted for %s",
                             ", ".join(missing) or "none", ", ".join(extra) or "none", self.coursedir.assignment_id)

    def copy_files(self):
        files = self.pack(self.src_path)
        self.check_notebooks(files)
        self.log.info("Source: %s", self.src_path)
        self.submission = self.call("POST", "courses", self.course_id, "assignments",
                                    self.coursedir.assignment_id, "submissions", json={"files": files})
        claimed = self.coursedir.student_id
        if claimed not in ("", "*", self.submission["student_id"]):
            # nbgrader's file exchange would have filed it under the claimed id (nbgrader #1097).
            self.log.warning("CourseDirectory.student_id is %r, but the hub says you are %r: submitted as %r",
                             claimed, self.submission["student_id"], self.submission["student_id"])
        self.log.info("Submitted as: %s %s %s", self.course_id, self.coursedir.assignment_id,
                      self.submission["timestamp"])
