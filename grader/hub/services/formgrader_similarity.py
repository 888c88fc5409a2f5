"""A "Similarity" column in the course formgrader's Manage Submissions page (issue #22).

``grader similarity`` leaves its results in the course directory (``similarity/<assignment>.json``
and the HTML page of matching passages, docs/similarity.md). Inside a course's formgrader service
(grader.hub.spawn.servers's extension) this module adds, under the service's prefix:

- ``aicourse/similarity/<assignment>.json``: per student, their highest pair score, with whom, whether
  it is flagged, how much of the answer is the instructor's solution, unreadable notebooks, and a
  link to the pair in the page;
- ``aicourse/similarity/<assignment>.html``: that page;
- nbgrader's ``formgrader/static/js/manage_submissions.js`` with ``data/formgrader/similarity.js``
  appended, which adds the column to nbgrader's own page (no template of nbgrader's is copied).

The handlers only read; nothing is decided or written. The service is reached only by the
course's staff (``access:services!service=<course>``), who may read the course directory anyway.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from grader.grading.similarity.output import SOLUTION_SHARE_SHOWN, file_stem, results_path
from grader.regular_files import read_regular_file
from grader.resources import HUB_DATA_DIR

SIMILARITY_JS = HUB_DATA_DIR / "formgrader" / "similarity.js"
ROUTE = "aicourse/similarity"
# What similarity.js wraps in nbgrader's manage_submissions.js; a version without them is served as it is.
NBGRADER_HOOKS = ("var insertRow = function", "var loadSubmissions = function",
                  "var SubmissionUI = Backbone.View.extend", "render: function")


def _label(who: dict) -> str:
    """A document's label, as grader.grading.similarity's HTML names it: ``id`` or ``id (corpus)``."""
    return f"{who['student_id']} ({who['corpus']})" if who.get("corpus") else who["student_id"]


def pair_anchor(pair: dict) -> str:
    """The id of a pair's section in the HTML page (grader.grading.similarity.output's ``_anchor``)."""
    return "pair-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{_label(pair['a'])}--{_label(pair['b'])}")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(read_regular_file(path))
    except (OSError, ValueError):
        return None


def report_path(course_dir: Path, results: dict, assignment_id: str) -> Path | None:
    """The HTML page of ``grader similarity``'s last run: where the JSON says (``--out-dir``) or
    beside the JSON; None when neither is there."""
    beside = results_path(course_dir, assignment_id).with_suffix(".html")
    named = Path(results["html"]) if results.get("html") else None
    for path in (named, beside):
        if path is not None and path.name == f"{file_stem(assignment_id)}.html" and path.is_file():
            return path
    return None


def similarity_column(course_dir: Path, assignment_id: str, report_url: str) -> dict:
    """What the column shows, per student, from ``similarity/<assignment>.json``;
    ``{"available": False}`` before ``grader similarity`` has run for the assignment."""
    results = _read_json(results_path(course_dir, assignment_id))
    if not isinstance(results, dict) or not isinstance(results.get("students"), dict):
        return {"available": False}
    report = report_path(course_dir, results, assignment_id) is not None
    flagged_pairs = {}
    for pair in results.get("pairs") or []:
        if pair.get("flagged"):
            for mine, other in (("a", "b"), ("b", "a")):
                if not pair[mine].get("corpus"):
                    flagged_pairs[(pair[mine]["student_id"], _label(pair[other]))] = pair_anchor(pair)
    students = {}
    for student_id, entry in results["students"].items():
        closest_to = _label(entry["closest_to"]) if entry.get("closest_to") else None
        anchor = flagged_pairs.get((student_id, closest_to))
        students[student_id] = {
            "closest": float(entry.get("closest") or 0.0),
            "closest_to": closest_to,
            "flagged": bool(entry.get("flagged")),
            "solution_share": float(entry.get("solution_share") or 0.0),
            "mostly_solution": float(entry.get("solution_share") or 0.0) >= SOLUTION_SHARE_SHOWN,
            "answer_tokens": entry.get("answer_tokens"),
            "unreadable": list(entry.get("unreadable") or []),
            # The pair's section when it is in the page (flagged pairs only), else the page's top.
            "report": (report_url + (f"#{anchor}" if anchor else "")) if report else None,
        }
    return {
        "available": True,
        "assignment_id": assignment_id,
        "generated": results.get("generated"),
        "threshold": float(results.get("threshold") or 0.0),
        "explanation": results.get("explanation") or "",
        "report": report_url if report else None,
        "students": students,
    }


def patched_manage_submissions_js(original: str, extra: str) -> str | None:
    """nbgrader's ``manage_submissions.js`` with the column's script after it; None when nbgrader's
    code lacks what the script wraps (then nbgrader's is served unchanged, without the column)."""
    if not all(hook in original for hook in NBGRADER_HOOKS):
        return None
    return f"{original}\n\n{extra}"


def similarity_handlers(base_url: str, course_dir: Path, log) -> list:
    """The routes above, for a formgrader service whose course directory is ``course_dir``."""
    from jupyter_server.base.handlers import JupyterHandler
    from jupyter_server.utils import url_path_join
    from nbgrader.server_extensions.formgrader import handlers as nbgrader_handlers
    from tornado import web

    course_dir = Path(course_dir)

    class SimilarityJson(JupyterHandler):
        @web.authenticated
        def get(self, assignment_id):
            report_url = url_path_join(base_url, ROUTE, f"{file_stem(assignment_id)}.html")
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.set_header("Cache-Control", "no-cache")
            self.finish(json.dumps(similarity_column(course_dir, assignment_id, report_url)))

    class SimilarityHtml(JupyterHandler):
        @web.authenticated
        def get(self, assignment_id):
            results = _read_json(results_path(course_dir, assignment_id))
            path = report_path(course_dir, results, assignment_id) if isinstance(results, dict) else None
            if path is None:
                raise web.HTTPError(404, f"no similarity page for {assignment_id}: run `grader similarity {assignment_id}`")
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            self.set_header("Cache-Control", "no-cache")
            self.finish(read_regular_file(path))

    handlers = [
        (url_path_join(base_url, ROUTE, r"([^/]+)\.json"), SimilarityJson),
        (url_path_join(base_url, ROUTE, r"([^/]+)\.html"), SimilarityHtml),
    ]
    original = Path(nbgrader_handlers.static_path, "js", "manage_submissions.js").read_text()
    patched = patched_manage_submissions_js(original, SIMILARITY_JS.read_text())
    if patched is None:
        log.warning("aicourse: nbgrader's formgrader manage_submissions.js is not the one expected; "
                    "the Similarity column is not shown (results: %s)", results_path(course_dir, "<assignment>"))
        return handlers

    class ManageSubmissionsJs(web.RequestHandler):
        def get(self):
            self.set_header("Content-Type", "application/javascript; charset=UTF-8")
            self.set_header("Cache-Control", "no-cache")
            self.finish(patched)

    return [*handlers, (url_path_join(base_url, "formgrader/static/js/manage_submissions.js"), ManageSubmissionsJs)]
