"""Which assignments are in ``source/`` and the exchange, and who submitted what: the folder
listings of nbgrader's ``NbGraderAPI`` (0.9.6), without importing nbgrader.

Each function repeats nbgrader's glob and regular expression, so a custom ``directory_structure``
gives the same answer. Released assignments are listed here only for nbgrader's own file
exchange; a course with another lister (the HTTP exchange) asks nbgrader's API.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from grader.grading.course_config import CourseConfig


def source_assignments(settings: CourseConfig) -> set[str]:
    """``NbGraderAPI.get_source_assignments``: the assignment folders in ``source/``."""
    pattern = settings.format_path(settings.source_directory, student_id=".", assignment_id="*")
    regex = settings.format_path(settings.source_directory, student_id=".", assignment_id="(?P<assignment_id>.*)", escape=True)
    found = set()
    for filename in glob.glob(pattern):
        if os.path.isdir(filename) and (match := re.match(regex, filename)):
            found.add(match.group("assignment_id"))
    return found


def submitted_students(settings: CourseConfig, assignment_id: str) -> set[str]:
    """``NbGraderAPI.get_submitted_students``: students with a folder of ``assignment_id`` in ``submitted/``."""
    pattern = settings.format_path(settings.submitted_directory, student_id="*", assignment_id=assignment_id)
    regex = settings.format_path(settings.submitted_directory, student_id="(?P<student_id>.*)",
                                 assignment_id=".*" if assignment_id == "*" else assignment_id, escape=True)
    found = set()
    for filename in glob.glob(pattern):
        if os.path.isdir(filename) and (match := re.match(regex, filename)):
            found.add(match.group("student_id"))
    return found


def released_assignments(settings: CourseConfig) -> set[str]:
    """``NbGraderAPI.get_released_assignments``: the assignments in the exchange's ``outbound/``."""
    if settings.http_exchange is not None:
        return _released_over_http(settings)
    if settings.exchange_root is None:
        from grader.grading.nbgrader_api import open_api

        with open_api(Path(settings.root)) as api:
            return api.get_released_assignments()
    if not settings.course_id:
        return set()
    # nbgrader lists from inside the course directory: a relative root is relative to it.
    root = os.path.join(settings.root, settings.exchange_root)
    # The exchange's ensure_root: a root that is not a directory writable by this user makes the
    # exchange "missing", and nothing is released.
    if not (os.path.isdir(root) and os.access(root, os.W_OK | os.X_OK)):
        return set()
    released = set()
    for path in glob.glob(os.path.join(root, settings.course_id, "outbound", "*")):
        if match := re.match(r".*/(?P<course_id>.*)/outbound/(?P<assignment_id>.*)", path):
            released.add(match.group("assignment_id"))
    return released


def _released_over_http(settings: CourseConfig) -> set[str]:
    """What nbgrader's API answers with this project's HTTP List plugin (grader.exchange.plugins.listing):
    the course's assignments on the exchange service; nothing when there is no course id, or when
    the service cannot be asked (no URL, no token, a refusal, unreachable: nbgrader's API then
    calls the exchange missing)."""
    from grader.exchange.plugins.config import TOKEN_ENV, URL_ENV

    if not settings.course_id:
        return set()
    service_url, api_token = settings.http_exchange
    service_url = service_url or os.environ.get(URL_ENV, "")
    api_token = api_token or os.environ.get(TOKEN_ENV) or os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not service_url or not api_token:
        return set()
    from grader.exchange.plugins.client import ExchangeClient, ExchangeRequestError

    try:
        entries = ExchangeClient(service_url, api_token).request("GET", "courses", settings.course_id, "assignments")
    except ExchangeRequestError:
        return set()
    return {entry["assignment_id"] for entry in entries}
