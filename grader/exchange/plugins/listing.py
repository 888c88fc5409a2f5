"""List (and unrelease) through the HTTP exchange, in the shapes nbgrader's tools expect.

The JupyterLab assignment list (``nbgrader.server_extensions.assignment_list``) and the formgrader
read these dictionaries; the keys are those of nbgrader's file exchange listing. "Submitted" comes
from the service rather than a cache in the student's home, so it is the same on every machine.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from nbgrader.exchange.abc import ExchangeList

from grader.exchange.plugins.base import HttpExchange, feedback_folder_name

# The status of an entry that only says "you are in this course": see List.init_dest.
ENROLLED = "enrolled"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class List(HttpExchange, ExchangeList):
    """Released assignments (default), or submissions (``inbound`` for staff, ``cached`` for a student)."""

    def init_src(self):
        pass

    def init_dest(self):
        caller = self.call("GET", "courses")
        # The caller's courses, and whether they are staff there.
        staff = {course["course_id"]: course["staff"] for course in caller["courses"]}
        course_ids = [self.coursedir.course_id] if self.coursedir.course_id else list(staff)
        assignment_id = self.coursedir.assignment_id if self.coursedir.assignment_id not in ("", "*") else None
        self.assignments = []
        # "cached" is a student's own submissions: the hub's name for the caller, whatever student id
        # their configuration claims; "inbound" is the staff's view, filtered as asked.
        if self.cached:
            student_id = caller["name"]
        else:
            student_id = self.coursedir.student_id if self.coursedir.student_id not in ("", "*") else None
        for course_id in course_ids:
            if self.inbound or self.cached:
                params = {key: value for key, value in (("assignment_id", assignment_id), ("student_id", student_id)) if value}
                self.assignments += self.call("GET", "courses", course_id, "submissions", params=params)
            else:
                released = [entry for entry in self.call("GET", "courses", course_id, "assignments")
                            if assignment_id in (None, entry["assignment_id"])]
                # nbgrader's Lab lists a student's courses as the course ids of their assignments
                # (assignment_list's list_courses): a course with nothing released yet read "No
                # courses found." One entry names such a course to its students; its status is none
                # of released/fetched/submitted, so the Lab's lists and `nbgrader list` show no row.
                if not released and assignment_id is None and not self.remove and staff.get(course_id) is False:
                    released = [{"course_id": course_id, "assignment_id": "", "status": ENROLLED, "notebooks": []}]
                self.assignments += released

    def copy_files(self):
        pass

    def _released_info(self, entry: dict) -> dict:
        if entry.get("status") == ENROLLED:
            return {**entry, "path": ""}
        course_id, assignment_id = entry["course_id"], entry["assignment_id"]
        local = self.local_assignment_dir(course_id, assignment_id)
        info = {"course_id": course_id, "assignment_id": assignment_id}
        if local.is_dir():
            info.update(status="fetched", path=str(local))
            notebooks = sorted(local.glob("*.ipynb"))
            info["notebooks"] = [{"notebook_id": nb.stem, "path": str(nb)} for nb in notebooks]
        else:
            remote = self.client.url("courses", course_id, "assignments", assignment_id)
            info.update(status="released", path=remote)
            info["notebooks"] = [{"notebook_id": nb, "path": f"{remote}/{nb}.ipynb"} for nb in entry["notebooks"]]
        if self.remove:
            info["status"] = "removed"
        return info

    def _submitted_info(self, entry: dict) -> dict:
        local = self.local_assignment_dir(entry["course_id"], entry["assignment_id"])
        feedback_dir = local / "feedback" / feedback_folder_name(entry["timestamp"])
        info = {key: entry[key] for key in ("course_id", "student_id", "assignment_id", "timestamp")}
        info.update(status="submitted", submission_id=entry["submission_id"],
                    path=self.client.url("courses", entry["course_id"], "submissions", entry["student_id"],
                                         entry["assignment_id"], entry["submission_id"]))
        info["notebooks"] = []
        for notebook_id in entry["notebooks"]:
            local_feedback = feedback_dir / f"{notebook_id}.html"
            has_local = local_feedback.is_file()
            exchange_checksum = entry["feedback"].get(notebook_id)
            info["notebooks"].append({
                "notebook_id": notebook_id,
                "path": f"{info['path']}/{notebook_id}.ipynb",
                "has_local_feedback": has_local,
                "has_exchange_feedback": exchange_checksum is not None,
                "local_feedback_path": str(local_feedback) if has_local else None,
                "feedback_updated": bool(has_local and exchange_checksum and _md5(local_feedback) != exchange_checksum),
            })
        notebooks = info["notebooks"]
        info["has_local_feedback"] = bool(notebooks) and all(nb["has_local_feedback"] for nb in notebooks)
        info["has_exchange_feedback"] = bool(notebooks) and all(nb["has_exchange_feedback"] for nb in notebooks)
        info["feedback_updated"] = any(nb["feedback_updated"] for nb in notebooks)
        # "view feedback" in the Lab goes to this path: the feedback itself where there is one
        # notebook (the file browser opens its folder with the file selected), else its folder.
        if not info["has_local_feedback"]:
            info["local_feedback_path"] = None
        elif len(notebooks) == 1:
            info["local_feedback_path"] = notebooks[0]["local_feedback_path"]
        else:
            info["local_feedback_path"] = str(feedback_dir)
        return info

    def parse_assignments(self) -> list[dict]:
        if not (self.inbound or self.cached):
            return [self._released_info(entry) for entry in self.assignments]
        grouped = defaultdict(list)
        for entry in self.assignments:
            info = self._submitted_info(entry)
            grouped[(info["course_id"], info["student_id"], info["assignment_id"])].append(info)
        return [{"course_id": course_id, "student_id": student_id, "assignment_id": assignment_id,
                 "status": "submitted", "submissions": sorted(submissions, key=lambda s: s["timestamp"])}
                for (course_id, student_id, assignment_id), submissions in sorted(grouped.items())]

    def list_files(self):
        assignments = self.parse_assignments()
        if self.inbound or self.cached:
            self.log.info("Submitted assignments:")
            for assignment in assignments:
                for info in assignment["submissions"]:
                    self.log.info("%s %s %s %s", info["course_id"], info["student_id"], info["assignment_id"],
                                  info["timestamp"])
        else:
            self.log.info("Released assignments:")
            for info in (info for info in assignments if info["status"] != ENROLLED):
                fetched = " (already downloaded)" if info["status"] == "fetched" else ""
                self.log.info("%s %s%s", info["course_id"], info["assignment_id"], fetched)
        return assignments

    def remove_files(self):
        """Unrelease the listed assignments (staff only); submissions are never removed."""
        if self.inbound or self.cached:
            self.fail("Submissions are kept by the exchange service and cannot be removed.")
        assignments = self.parse_assignments()
        for info in assignments:
            self.log.info("Removing released assignment: %s %s", info["course_id"], info["assignment_id"])
            self.call("DELETE", "courses", info["course_id"], "assignments", info["assignment_id"])
        return assignments
