"""A small HTTP client for the exchange service, and the files <-> JSON packing both sides use."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urljoin

import requests


class ExchangeRequestError(Exception):
    """The service refused or could not be reached; the message says what it answered."""

    def __init__(self, status: int | None, message: str):
        super().__init__(message)
        self.status = status


class ExchangeClient:
    """Calls the exchange API at ``service_url`` with a hub token."""

    def __init__(self, service_url: str, token: str, timeout: float = 120):
        self.base = service_url.rstrip("/") + "/api/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"
        self.timeout = timeout

    def url(self, *parts: str) -> str:
        return urljoin(self.base, "/".join(quote(part, safe="") for part in parts))

    def request(self, method: str, *parts: str, params: dict | None = None, json: dict | None = None):
        url = self.url(*parts)
        try:
            response = self.session.request(method, url, params=params, json=json, timeout=self.timeout)
        except requests.RequestException as error:
            raise ExchangeRequestError(None, f"cannot reach the exchange at {url}: {error}") from error
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.reason
            except ValueError:
                message = response.reason
            raise ExchangeRequestError(response.status_code, f"{method} {url}: {response.status_code} {message}")
        try:
            return response.json()
        except ValueError as error:
            raise ExchangeRequestError(response.status_code, f"{method} {url}: the answer is not JSON; "
                                       "is this the exchange service's URL?") from error

    def get(self, *parts: str, **params):
        return self.request("GET", *parts, params={k: v for k, v in params.items() if v is not None})


def pack_directory(folder: Path, *, keep=lambda relative: True) -> dict[str, str]:
    """Regular files under ``folder`` that ``keep(relative_path)`` accepts, as ``{"a/b.ipynb": base64}``.

    Nothing is followed: symlinks, hard links, devices, fifos and sockets are left out (a student's
    submit refuses them first: :meth:`grader.exchange.plugins.base.HttpExchange.refuse_non_regular`)."""
    from grader.regular_files import Entry, walk_regular

    files = {}
    for item in walk_regular(Path(folder)):
        if isinstance(item, Entry) and keep(PurePosixPath(item.relative)):
            files[item.relative] = base64.b64encode(item.read()).decode("ascii")
    return files


def _safe_relative(name: str) -> PurePosixPath:
    # The service checks paths too; a client never writes outside the folder it was asked to fill.
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        raise ExchangeRequestError(None, f"the exchange sent an unsafe file path {name!r}")
    return path


def write_files(files: dict[str, str], folder: Path, *, only_missing: bool = False) -> list[Path]:
    """Write ``{"a/b": base64}`` into ``folder``; return the files written.

    A new folder is filled in a temporary sibling and renamed into place, so a failed transfer
    leaves nothing behind. With ``only_missing`` the folder exists and only absent files are added.
    """
    folder = Path(folder)
    if only_missing:
        written = []
        for name, content in files.items():
            target = folder.joinpath(*_safe_relative(name).parts)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(content))
                written.append(target)
        return written
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for name, content in files.items():
            target = staging.joinpath(*_safe_relative(name).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(content))
        os.chmod(staging, 0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [folder / name for name in files]
