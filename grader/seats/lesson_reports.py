"""Lessons run, reported by each learner's own Jupyter server to the seats service.

"Lessons run" in the seats usage reports counts the lesson notebooks a learner saved with at least
one executed code cell. Only the learner's server sees those files: on one machine the homes are on
the hub's disk, but on Kubernetes each home is a volume of the user's pod and the hub pod has none.
So the server reports, and the seats service records (``POST /services/seats/api/lesson-runs``,
:class:`grader.seats.api.LessonRunsHandler`, table ``lesson_runs``):

- this module is a Jupyter server extension, enabled in the students' Jupyter configuration
  (``grader/hub/data/jupyter/student/jupyter_server_config.d/platform-student.json``); it does
  nothing unless the hub gave the server ``AICOURSE_SEATS_LESSONS_URL`` (seats enabled);
- it adds a post-save hook to the server's contents manager: when a notebook under ``~/courses``
  is saved with an executed code cell, it posts the notebook's path under ``~/courses`` once per
  server, with the server's own hub token (``JUPYTERHUB_API_TOKEN``, which the hub lets call the
  seats service: ``access:services!service=seats``). The service files it under the token's user,
  so a server can only ever report its own user's lessons;
- the report runs after the save has answered, off the server's event loop for the file read; a
  failed report is logged and tried again at the next save of that lesson.

Standard library and tornado only: every student's server imports it at start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

URL_ENV = "AICOURSE_SEATS_LESSONS_URL"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
LESSONS_FOLDER = "courses"
REPORT_TIMEOUT_S = 20

log = logging.getLogger(__name__)


def has_executed_code_cell(notebook: Path) -> bool:
    """Whether the saved notebook holds a code cell that ran (an execution count)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return False
    return any(isinstance(cell, dict) and cell.get("cell_type") == "code" and cell.get("execution_count")
               for cell in cells)


def lesson_of(os_path: str | os.PathLike, lessons_root: Path) -> str | None:
    """The notebook's path under ``lessons_root`` ("01_python/01_basics.ipynb"), None when it is not a lesson."""
    path = Path(os_path)
    try:
        relative = path.resolve().relative_to(lessons_root.resolve())
    except (ValueError, OSError):
        return None
    if path.suffix != ".ipynb" or ".ipynb_checkpoints" in relative.parts:
        return None
    return relative.as_posix()


class LessonReporter:
    """The post-save hook, and what it already reported."""

    def __init__(self, url: str, token: str, lessons_root: Path, logger: logging.Logger = log):
        self.url = url
        self.token = token
        self.lessons_root = lessons_root
        self.log = logger
        self.reported: set[str] = set()
        self._pending: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    def post_save(self, model=None, os_path: str = "", contents_manager=None, **_kwargs) -> None:
        """Jupyter's post-save hook: schedule a report of a lesson not reported yet."""
        lesson = lesson_of(os_path, self.lessons_root)
        if lesson is None or lesson in self.reported or lesson in self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a synchronous contents manager in a thread: nowhere to wait, report there
            asyncio.run(self.report(Path(os_path), lesson))
            return
        self._pending.add(lesson)
        task = loop.create_task(self.report(Path(os_path), lesson))
        self._tasks.add(task)  # a reference, so the task is not collected before it ends
        task.add_done_callback(self._tasks.discard)

    async def report(self, notebook: Path, lesson: str) -> bool:
        """Post the lesson if the saved notebook ran; True once the service has it."""
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError

        try:
            if not await asyncio.to_thread(has_executed_code_cell, notebook):
                return False
            try:
                await AsyncHTTPClient().fetch(
                    self.url, method="POST", body=json.dumps({"lesson": lesson}),
                    headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
                    request_timeout=REPORT_TIMEOUT_S)
            except (HTTPClientError, OSError) as error:
                self.log.warning("seats: could not report lesson %s as run (%s); trying again at its next save",
                                 lesson, error)
                return False
            self.reported.add(lesson)
            self.log.info("seats: reported lesson %s as run", lesson)
            return True
        finally:
            self._pending.discard(lesson)


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "grader.seats.lesson_reports"}]


def _load_jupyter_server_extension(serverapp) -> None:
    url, token = os.environ.get(URL_ENV), os.environ.get(TOKEN_ENV)
    if not url or not token:
        serverapp.log.debug("seats: no %s, lessons run are not reported", URL_ENV)
        return
    root = Path(os.path.expanduser(serverapp.contents_manager.root_dir or serverapp.root_dir))
    reporter = LessonReporter(url, token, root / LESSONS_FOLDER, serverapp.log)
    serverapp.contents_manager.register_post_save_hook(reporter.post_save)
    serverapp.log.info("seats: lessons run under %s are reported to %s", reporter.lessons_root, url)
