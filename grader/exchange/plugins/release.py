"""Release an assignment to the HTTP exchange (instructors, graders and the course's formgrader)."""

from __future__ import annotations

import os

from nbgrader.exchange.abc import ExchangeReleaseAssignment

from grader.exchange.plugins.base import HttpExchange


class ReleaseAssignment(HttpExchange, ExchangeReleaseAssignment):
    """Upload ``release/<assignment>`` of the course directory; ``force`` replaces an earlier release."""

    def init_src(self):
        self.src_path = self.coursedir.format_path(self.coursedir.release_directory, ".", self.coursedir.assignment_id)
        if not os.path.isdir(self.src_path):
            source = self.coursedir.format_path(self.coursedir.source_directory, ".", self.coursedir.assignment_id)
            if os.path.isdir(source):
                self.fail(f"Assignment found in '{source}' but not '{self.src_path}', "
                          "run `nbgrader generate_assignment` first.")
            self.fail(f"Assignment not found at: {self.src_path}")

    def init_dest(self):
        self.course_id = self.require_course_id()

    def copy_files(self):
        files = self.pack(self.src_path)
        self.log.info("Source: %s", self.src_path)
        self.call("PUT", "courses", self.course_id, "assignments", self.coursedir.assignment_id,
                  params={"force": "1"} if self.force else None, json={"files": files})
        self.log.info("Released as: %s %s", self.course_id, self.coursedir.assignment_id)
