"""Release feedback to, and fetch it from, the HTTP exchange.

Feedback is filed under the student and the submission it grades (matched by the submission's
``timestamp.txt``, which the service wrote); a student fetches only their own, because the service
answers ``feedback/<student>`` only to that student (and to the course's staff).
"""

from __future__ import annotations

import base64
import glob
import os
import re
from pathlib import Path

from nbgrader.exchange.abc import ExchangeFetchFeedback, ExchangeReleaseFeedback

from grader.exchange.plugins.base import HttpExchange, feedback_folder_name
from grader.exchange.plugins.mathjax import localise


def _with_local_mathjax(html: bytes) -> bytes:
    try:
        return localise(html.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:  # not nbconvert's output: sent as it is
        return html


class ReleaseFeedback(HttpExchange, ExchangeReleaseFeedback):
    """Upload ``feedback/<student>/<assignment>/*.html`` of the course directory, per student."""

    def init_src(self):
        self.student_id = self.coursedir.student_id if self.coursedir.student_id not in ("", None) else "*"

    def init_dest(self):
        self.course_id = self.require_course_id()

    def feedback_folders(self) -> dict[str, Path]:
        """Student id -> their generated feedback folder for this assignment."""
        pattern = self.coursedir.format_path(self.coursedir.feedback_directory, self.student_id,
                                             self.coursedir.assignment_id)
        regexp = self.coursedir.format_path(self.coursedir.feedback_directory, "(?P<student_id>[^/]+)",
                                            self.coursedir.assignment_id, escape=True)
        folders = {}
        for folder in sorted(glob.glob(pattern)):
            match = re.fullmatch(regexp, folder)
            if match and os.path.isdir(folder):
                folders[match.group("student_id")] = Path(folder)
        return folders

    def copy_files(self):
        excluded = set(filter(None, (self.coursedir.student_id_exclude or "").split(",")))
        for student_id, folder in self.feedback_folders().items():
            if student_id in excluded:
                continue
            timestamp_file = folder / "timestamp.txt"
            if not timestamp_file.is_file():
                self.log.warning("No timestamp.txt in %s; skipping %s", folder, student_id)
                continue
            # MathJax from the student's own server rather than a CDN (grader.exchange.plugins.mathjax).
            files = {html.name: base64.b64encode(_with_local_mathjax(html.read_bytes())).decode("ascii")
                     for html in sorted(folder.glob("*.html"))}
            self.call("PUT", "courses", self.course_id, "feedback", student_id, self.coursedir.assignment_id,
                      json={"timestamp": timestamp_file.read_text().strip(), "files": files})
            self.log.info("Released feedback for student '%s' on assignment '%s/%s'",
                          student_id, self.course_id, self.coursedir.assignment_id)


class FetchFeedback(HttpExchange, ExchangeFetchFeedback):
    """Download the caller's own feedback into ``<assignment>/feedback/<when>/``, ``<when>`` the
    submission's time as a plain folder name (:func:`grader.exchange.plugins.base.feedback_folder_name`)."""

    def init_src(self):
        self.course_id = self.require_course_id()
        # The hub's name for the caller, never the configured student id: one's own feedback only.
        self.student_id = self.call("GET", "courses")["name"]
        assignment_ids = ([self.coursedir.assignment_id] if self.coursedir.assignment_id not in ("", "*") else
                          sorted({s["assignment_id"] for s in self.call("GET", "courses", self.course_id, "submissions",
                                                                        params={"student_id": self.student_id})}))
        self.feedback = {assignment_id: self.call("GET", "courses", self.course_id, "feedback", self.student_id,
                                                  assignment_id)
                         for assignment_id in assignment_ids}

    def init_dest(self):
        pass

    def copy_files(self):
        for assignment_id, entries in self.feedback.items():
            dest = self.local_assignment_dir(self.course_id, assignment_id) / "feedback"
            for entry in entries:
                folder = dest / feedback_folder_name(entry["timestamp"])
                folder.mkdir(parents=True, exist_ok=True)
                for name, content in entry["files"].items():
                    if "/" in name or name.startswith("."):
                        self.fail(f"the exchange sent an unexpected feedback file name {name!r}")
                    (folder / name).write_bytes(base64.b64decode(content))
                    self.log.info("Fetched feedback: %s", folder / name)
            if not entries:
                self.log.warning("No feedback yet for %s/%s", self.course_id, assignment_id)
