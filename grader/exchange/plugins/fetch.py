"""Fetch a released assignment from the HTTP exchange into the student's folder."""

from __future__ import annotations

import os

from nbgrader.exchange.abc import ExchangeFetchAssignment

from grader.exchange.plugins.base import HttpExchange
from grader.exchange.plugins.client import write_files


class FetchAssignment(HttpExchange, ExchangeFetchAssignment):
    """Download ``<assignment>`` (or ``<course>/<assignment>``); never overwrites a student's copy."""

    def init_src(self):
        self.course_id = self.require_course_id()
        answer = self.call("GET", "courses", self.course_id, "assignments", self.coursedir.assignment_id)
        self.files = answer["files"]

    def init_dest(self):
        self.dest_path = str(self.local_assignment_dir(self.course_id, self.coursedir.assignment_id))
        if os.path.isdir(self.dest_path) and not self.replace_missing_files:
            self.fail(f"You already have a copy of the assignment in this directory: {self.dest_path}")

    def copy_files(self):
        self.log.info("Destination: %s", self.dest_path)
        written = write_files(self.files, self.dest_path, only_missing=os.path.isdir(self.dest_path))
        for path in written if self.replace_missing_files else ():
            self.log.warning("Replacing missing file '%s'", path)
        self.log.info("Fetched as: %s %s", self.course_id, self.coursedir.assignment_id)
