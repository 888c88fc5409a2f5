"""Collect submissions from the HTTP exchange into the course's ``submitted/`` folder."""

from __future__ import annotations

import os
from collections import defaultdict

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.abc import ExchangeCollect
from nbgrader.utils import parse_utc

from grader.exchange.plugins.base import HttpExchange
from grader.exchange.plugins.client import write_files


class Collect(HttpExchange, ExchangeCollect):
    """Each student's latest submission (or, with ``before_duedate``, the latest one before the
    due date), as nbgrader's own collect picks it; ``update`` replaces an older collected one."""

    def init_src(self):
        self.course_id = self.require_course_id()
        student_id = self.coursedir.student_id if self.coursedir.student_id not in ("", "*") else None
        listed = self.call("GET", "courses", self.course_id, "submissions",
                           params={"assignment_id": self.coursedir.assignment_id,
                                   **({"student_id": student_id} if student_id else {})})
        by_student = defaultdict(list)
        for submission in listed:
            by_student[submission["student_id"]].append({**submission, "when": parse_utc(submission["timestamp"])})
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gradebook:
            try:
                duedate = gradebook.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                duedate = None
        self.records = []
        for submissions in by_student.values():
            newest_first = sorted(submissions, key=lambda s: s["when"], reverse=True)
            on_time = [s for s in newest_first if duedate is not None and s["when"] <= duedate]
            self.records.append(on_time[0] if self.before_duedate and on_time else newest_first[0])

    def init_dest(self):
        pass

    def copy_files(self):
        if not self.records:
            self.log.warning("No submissions of '%s' for course '%s' to collect",
                             self.coursedir.assignment_id, self.course_id)
        for record in sorted(self.records, key=lambda r: r["student_id"]):
            student_id = record["student_id"]
            dest_path = self.coursedir.format_path(self.coursedir.submitted_directory, student_id,
                                                   self.coursedir.assignment_id)
            if os.path.isdir(dest_path):
                existing = self.coursedir.get_existing_timestamp(dest_path)
                newer = existing is None or record["when"] > existing
                if not ((self.update and newer) or (self.before_duedate and existing != record["when"])):
                    self.log.info("No newer submission to collect: %s %s", student_id, self.coursedir.assignment_id)
                    continue
                self.log.info("Updating submission: %s %s", student_id, self.coursedir.assignment_id)
            else:
                self.log.info("Collecting submission: %s %s", student_id, self.coursedir.assignment_id)
            answer = self.call("GET", "courses", self.course_id, "submissions", student_id,
                               self.coursedir.assignment_id, record["submission_id"])
            write_files(answer["files"], dest_path)
        self.name_students(sorted({record["student_id"] for record in self.records}))

    def name_students(self, student_ids: list[str]) -> None:
        """Give the collected students a name in the gradebook, so the formgrader does not show
        "None, None" (it writes ``last_name, first_name``).

        The hub keeps no person's name, only the account's: that becomes the last name, with an
        empty first name, for students without a name of their own. A name an instructor set (in
        the formgrader, ``nbgrader db student add``) is kept."""
        if not student_ids:
            return
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gradebook:
            for student_id in student_ids:
                try:
                    student = gradebook.find_student(student_id)
                except MissingEntry:
                    student = None
                if student is None or (student.first_name is None and student.last_name is None):
                    gradebook.update_or_create_student(student_id, last_name=student_id, first_name="")
