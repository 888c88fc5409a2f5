"""The base of the HTTP exchange plugins: where the service is, which token, how files travel."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from nbgrader.exchange.abc import Exchange
from nbgrader.utils import ignore_patterns
from traitlets import Bool, Float, Unicode, default

from grader.exchange.plugins.client import ExchangeClient, ExchangeRequestError, pack_directory
from grader.exchange.plugins.config import TOKEN_ENV, URL_ENV


def feedback_folder_name(timestamp: str) -> str:
    """The folder a submission's feedback is fetched into, inside ``<assignment>/feedback/``.

    nbgrader's file exchange names it after the submission's timestamp as written
    (``2024-05-01 12:34:56.123456 UTC``): spaces, colons and a dot in a folder name, which Lab's
    file browser shows as is and other systems refuse. Here: the same instant in UTC, with its
    microseconds, ``2024-05-01_12-34-56_123456``: two submissions within one second (a quick
    resubmit) keep their own folders, so one's feedback is never taken for the other's."""
    from nbgrader.utils import parse_utc

    return parse_utc(timestamp).strftime("%Y-%m-%d_%H-%M-%S_%f")


class HttpExchange(Exchange):
    """nbgrader's exchange, over HTTP to :mod:`grader.exchange.service` with a hub token.

    The service, not this client, decides who the caller is: the hub names the owner of the
    token. A student id in the student's nbgrader configuration changes nothing on the service.
    """

    service_url = Unicode(
        help=f"URL of the exchange service, e.g. http://127.0.0.1:8011/services/nbgrader-exchange/ (default: ${URL_ENV})",
    ).tag(config=True)

    api_token = Unicode(
        help=(f"Hub API token to call the exchange with (default: ${TOKEN_ENV}, else $JUPYTERHUB_API_TOKEN, "
              "which the hub gives every user's server and service)"),
    ).tag(config=True)

    path_includes_course = Bool(
        False, help="Fetch into <course>/<assignment> rather than <assignment> (as nbgrader's file exchange).",
    ).tag(config=True)

    request_timeout = Float(120, help="Seconds to wait for the exchange service to answer.").tag(config=True)

    @default("service_url")
    def _service_url_default(self):
        return os.environ.get(URL_ENV, "")

    @default("api_token")
    def _api_token_default(self):
        return os.environ.get(TOKEN_ENV) or os.environ.get("JUPYTERHUB_API_TOKEN", "")

    _client: ExchangeClient | None = None

    @property
    def client(self) -> ExchangeClient:
        if self._client is None:
            if not self.service_url:
                self.fail(f"No exchange URL: set c.HttpExchange.service_url or ${URL_ENV}.")
            if not self.api_token:
                self.fail(f"No hub token for the exchange: set ${TOKEN_ENV} to an API token from the hub's "
                          "token page (inside the hub, $JUPYTERHUB_API_TOKEN is used).")
            self._client = ExchangeClient(self.service_url, self.api_token, timeout=self.request_timeout)
        return self._client

    def call(self, method: str, *parts: str, params: dict | None = None, json: dict | None = None):
        """Call the service; a refusal becomes nbgrader's ExchangeError with the service's reason."""
        try:
            return self.client.request(method, *parts, params=params, json=json)
        except ExchangeRequestError as error:
            self.fail(str(error))

    def require_course_id(self) -> str:
        if not self.coursedir.course_id:
            self.fail("No course id specified. Re-run with --course flag.")
        return self.coursedir.course_id

    def local_assignment_dir(self, course_id: str, assignment_id: str) -> Path:
        """Where a student's copy of an assignment lives, as nbgrader's file exchange puts it."""
        parts = (course_id, assignment_id) if self.path_includes_course else (assignment_id,)
        return Path(os.path.abspath(os.path.join(self.assignment_dir, *parts)))

    def refuse_non_regular(self, folder: Path, keep=lambda relative: True) -> None:
        """Fail, naming them, when ``folder`` holds anything but regular files and directories
        (symlinks, hard links, devices, fifos, sockets): nothing is ever followed or sent."""
        from grader.regular_files import non_regular_entries

        refused = [flag for flag in non_regular_entries(Path(folder))
                   if keep(PurePosixPath(flag.reason.split(": ", 1)[0]))]
        if refused:
            self.fail("Only regular files can be sent to the exchange; remove or replace these and try again:\n"
                      + "\n".join(f"  {flag.reason}" for flag in refused))

    def pack(self, folder: Path) -> dict[str, str]:
        """The files nbgrader would copy from ``folder`` (CourseDirectory ignore, include and
        max_file_size applied), checked against ``CourseDirectory.max_dir_size``."""
        ignore = ignore_patterns(exclude=self.coursedir.ignore, include=self.coursedir.include,
                                 max_file_size=self.coursedir.max_file_size, log=self.log)
        ignored: set[Path] = set()
        for dirpath, dirnames, filenames in os.walk(folder):
            skipped = ignore(dirpath, dirnames + filenames)
            ignored |= {Path(dirpath, name) for name in skipped}
            dirnames[:] = [name for name in dirnames if name not in skipped]
        keep = lambda relative: not any(  # noqa: E731
            Path(folder, *relative.parts[:i + 1]) in ignored for i in range(len(relative.parts)))
        self.refuse_non_regular(folder, keep)
        files = pack_directory(folder, keep=keep)
        size = sum(len(content) * 3 // 4 for content in files.values())
        if size > 1000 * self.coursedir.max_dir_size:
            self.fail(f"Directory size is too big: {size} bytes, at most {1000 * self.coursedir.max_dir_size} "
                      "(CourseDirectory.max_dir_size)")
        return files
