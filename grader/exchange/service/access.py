"""Who is calling the exchange and what they may do in each course, decided by the hub only.

The hub identifies the caller from their token (:class:`jupyterhub.services.auth.HubAuth`); the
service then asks the hub, with its own token, which groups that user is in. Nothing in a request
(a form field, a JSON key, a config value on the student's side) can change who the caller is.

- Staff of a course: members of ``formgrade-<course>`` (its instructors and graders), and the
  hub service named ``<course>``, which is the course's formgrader (``grader.hub.config``
  names each formgrader service after its course id). Staff release, list and read every
  submission, collect, and release feedback.
- Students of a course: members of ``nbgrader-<course>``. They list and fetch the released
  assignments, submit as themselves, and read only their own submissions and feedback.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

STAFF_PREFIX = "formgrade-"
STUDENT_PREFIX = "nbgrader-"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a hub user (with their groups) or a hub service."""

    name: str
    kind: str  # "user" or "service"
    groups: frozenset[str] = field(default_factory=frozenset)

    def is_staff(self, course_id: str) -> bool:
        if self.kind == "service":
            return self.name == course_id
        return f"{STAFF_PREFIX}{course_id}" in self.groups

    def is_student(self, course_id: str) -> bool:
        return self.kind == "user" and f"{STUDENT_PREFIX}{course_id}" in self.groups

    def courses(self, known: frozenset[str]) -> list[str]:
        return sorted(course for course in known if self.is_staff(course) or self.is_student(course))


class GroupLookup:
    """Ask the hub for a user's groups with the service's own token; remember answers briefly.

    A few seconds of memory spares the hub a request per file listing, while a student removed
    from a course loses access within ``max_age`` seconds.
    """

    def __init__(self, *, api_url: str, api_token: str, max_age: float = 10.0):
        self.api_url = api_url.rstrip("/")
        self.api_token = api_token
        self.max_age = max_age
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def groups(self, username: str) -> frozenset[str]:
        cached = self._cache.get(username)
        if cached and time.monotonic() - cached[0] < self.max_age:
            return cached[1]
        try:
            response = await AsyncHTTPClient().fetch(f"{self.api_url}/users/{quote(username, safe='')}",
                                                     headers={"Authorization": f"token {self.api_token}"})
        except HTTPClientError as error:
            # 404: a user the hub no longer knows (or the service lacks read:users:groups).
            if error.code in (403, 404):
                return frozenset()
            raise
        groups = frozenset(json.loads(response.body).get("groups") or ())
        self._cache[username] = (time.monotonic(), groups)
        return groups
