"""The exchange service's storage: a directory tree only the service writes.

Layout under the root (one folder per course)::

    <course>/released/<assignment>/...                          the student version, as released
    <course>/submissions/<student>/<assignment>/<submission>/...  every submission, never changed
    <course>/feedback/<student>/<assignment>/<submission>/<notebook>.html
    .tmp/                                                       staging for atomic writes

Every write builds a complete tree in ``.tmp/`` and moves it into place with one ``rename``, so a
crash leaves either the old state or the new one. The service runs in one tornado process and does
its file work synchronously, so no two requests ever interleave their writes.

A submission's time is the service's clock, written to its ``timestamp.txt`` in nbgrader's format;
a ``timestamp.txt`` or ``submission_secret.txt`` sent by the client is dropped, so nobody can date a
submission before the deadline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from tornado.web import HTTPError

# nbgrader's default Exchange.timestamp_format, so collected submissions read as nbgrader's do.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"
# Files the service writes itself into a submission; a client's copy is ignored.
SERVICE_FILES = {"timestamp.txt", "submission_secret.txt"}
# Ids in paths: course, assignment, student and submission ids; no separators, no leading dot.
_ID = re.compile(r"^[A-Za-z0-9_@+=,~-][A-Za-z0-9_.@+=,~-]{0,127}$")
MAX_FILES = 2000


class StorageError(HTTPError):
    """A request the storage refuses, with the HTTP status the service answers (an HTTPError, so
    tornado sends it as it is)."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message.replace("%", "%%"))
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


def check_id(value: str, what: str) -> str:
    if not _ID.match(value or ""):
        raise StorageError(400, f"invalid {what} {value!r}: letters, digits and _.@+=,~- only, not starting with '.'")
    return value


def check_relative_path(name: str) -> PurePosixPath:
    """A file name from a client: relative, inside its folder, no '..', no empty parts."""
    path = PurePosixPath(name)
    if (not name or "\\" in name or "\x00" in name or path.is_absolute()
            or any(part in ("", ".", "..") for part in name.split("/"))):
        raise StorageError(400, f"invalid file path {name!r}: must be relative, without '..'")
    return path


def decode_files(files: object, *, max_bytes: int) -> dict[PurePosixPath, bytes]:
    """``{"relative/path": base64}`` from a request body, checked, decoded, within ``max_bytes``."""
    if not isinstance(files, dict):
        raise StorageError(400, "'files' must be an object mapping relative paths to base64 contents")
    if len(files) > MAX_FILES:
        raise StorageError(413, f"too many files: {len(files)} (at most {MAX_FILES})")
    decoded, total = {}, 0
    names = set(files)
    for name, content in files.items():
        path = check_relative_path(name)
        if not isinstance(content, str):
            # e.g. {"link": {"symlink": "/etc/shadow"}}: the format has no way to send a link, and
            # a client must not pretend it has.
            raise StorageError(400, f"file {name!r}: not a regular file; only regular files can be uploaded "
                                    "(no symlinks, hard links, devices, fifos or sockets); its content must be "
                                    "a base64 string")
        for parent in list(path.parents)[:-1]:
            if parent.as_posix() in names:
                raise StorageError(400, f"file {name!r}: {parent.as_posix()!r} is sent as a file and as a folder")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as error:
            raise StorageError(400, f"file {name!r}: not valid base64 ({error})") from error
        total += len(data)
        if total > max_bytes:
            raise StorageError(413, f"upload too large: more than {max_bytes} bytes of files")
        decoded[path] = data
    return decoded


def encode_tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` as ``{"relative/path": base64}``."""
    return {
        path.relative_to(folder).as_posix(): base64.b64encode(path.read_bytes()).decode("ascii")
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def notebook_ids(folder: Path) -> list[str]:
    return sorted(path.stem for path in folder.glob("*.ipynb") if path.is_file())


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Submission:
    course_id: str
    student_id: str
    assignment_id: str
    submission_id: str
    timestamp: str
    path: Path

    def as_json(self, feedback: dict[str, str] | None) -> dict:
        return {
            "course_id": self.course_id,
            "student_id": self.student_id,
            "assignment_id": self.assignment_id,
            "submission_id": self.submission_id,
            "timestamp": self.timestamp,
            "notebooks": notebook_ids(self.path),
            # notebook id -> md5 of its released feedback; empty when none is released yet.
            "feedback": feedback or {},
        }


class ExchangeStore:
    """Released assignments, submissions and feedback of every course, under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # only the service's own user reads the store directly
        self.staging = self.root / ".tmp"
        shutil.rmtree(self.staging, ignore_errors=True)  # half-written trees of a crashed run
        self.staging.mkdir()

    # --- paths ---------------------------------------------------------------------------------

    def _released(self, course_id: str, assignment_id: str) -> Path:
        return self.root / check_id(course_id, "course id") / "released" / check_id(assignment_id, "assignment id")

    def _submissions(self, course_id: str, student_id: str, assignment_id: str) -> Path:
        return (self.root / check_id(course_id, "course id") / "submissions" / check_id(student_id, "student id")
                / check_id(assignment_id, "assignment id"))

    def _feedback(self, course_id: str, student_id: str, assignment_id: str) -> Path:
        return (self.root / check_id(course_id, "course id") / "feedback" / check_id(student_id, "student id")
                / check_id(assignment_id, "assignment id"))

    # --- atomic writes -------------------------------------------------------------------------

    def _stage(self, files: dict[PurePosixPath, bytes]) -> Path:
        staged = self.staging / secrets.token_hex(8)
        staged.mkdir()
        for name, data in files.items():
            target = staged.joinpath(*name.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            # A fresh tree of the service's own: O_EXCL|O_NOFOLLOW, nothing there can be a link.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            with open(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        return staged

    def _move_into_place(self, staged: Path, destination: Path) -> None:
        """Replace ``destination`` by ``staged``: the old tree is renamed away first, then removed."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if destination.exists():
            old = self.staging / f"old-{secrets.token_hex(8)}"
            os.rename(destination, old)
        os.rename(staged, destination)
        if old is not None:
            shutil.rmtree(old)

    # --- released assignments ------------------------------------------------------------------

    def released_assignments(self, course_id: str) -> list[dict]:
        folder = self.root / check_id(course_id, "course id") / "released"
        if not folder.is_dir():
            return []
        return [{"course_id": course_id, "assignment_id": path.name, "notebooks": notebook_ids(path)}
                for path in sorted(folder.iterdir()) if path.is_dir()]

    def release(self, course_id: str, assignment_id: str, files: dict[PurePosixPath, bytes], *, force: bool) -> None:
        destination = self._released(course_id, assignment_id)
        if destination.exists() and not force:
            raise StorageError(409, f"{course_id}/{assignment_id} is already released; release with force to replace it")
        self._move_into_place(self._stage(files), destination)

    def unrelease(self, course_id: str, assignment_id: str) -> None:
        destination = self._released(course_id, assignment_id)
        if not destination.is_dir():
            raise StorageError(404, f"{course_id}/{assignment_id} is not released")
        old = self.staging / f"old-{secrets.token_hex(8)}"
        os.rename(destination, old)
        shutil.rmtree(old)

    def released_files(self, course_id: str, assignment_id: str) -> dict[str, str]:
        folder = self._released(course_id, assignment_id)
        if not folder.is_dir():
            raise StorageError(404, f"{course_id}/{assignment_id} is not released")
        return encode_tree(folder)

    # --- submissions ---------------------------------------------------------------------------

    def submit(self, course_id: str, student_id: str, assignment_id: str,
               files: dict[PurePosixPath, bytes]) -> Submission:
        """Store a new submission of ``student_id`` (the caller the hub named), dated by the service."""
        if not self._released(course_id, assignment_id).is_dir():
            raise StorageError(404, f"{course_id}/{assignment_id} is not released")
        now = datetime.now(timezone.utc)
        files = {name: data for name, data in files.items() if name.as_posix() not in SERVICE_FILES}
        files[PurePosixPath("timestamp.txt")] = now.strftime(TIMESTAMP_FORMAT).encode()
        # Lets nbgrader's own feedback tools work on collected submissions; never sent to students.
        files[PurePosixPath("submission_secret.txt")] = secrets.token_hex(32).encode()
        submission_id = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{secrets.token_hex(3)}"
        destination = self._submissions(course_id, student_id, assignment_id) / submission_id
        self._move_into_place(self._stage(files), destination)
        return self._submission(course_id, student_id, assignment_id, destination)

    def _submission(self, course_id: str, student_id: str, assignment_id: str, path: Path) -> Submission:
        return Submission(course_id, student_id, assignment_id, path.name,
                          (path / "timestamp.txt").read_text().strip(), path)

    def submissions(self, course_id: str, *, student_id: str | None = None,
                    assignment_id: str | None = None) -> list[Submission]:
        """Every submission of the course, oldest first; filtered by student and assignment."""
        base = self.root / check_id(course_id, "course id") / "submissions"
        students = [check_id(student_id, "student id")] if student_id else (
            sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else [])
        found = []
        for student in students:
            assignments = [check_id(assignment_id, "assignment id")] if assignment_id else (
                sorted(p.name for p in (base / student).iterdir() if p.is_dir()) if (base / student).is_dir() else [])
            for assignment in assignments:
                folder = base / student / assignment
                if folder.is_dir():
                    found += [self._submission(course_id, student, assignment, path)
                              for path in sorted(folder.iterdir()) if path.is_dir()]
        return sorted(found, key=lambda s: (s.student_id, s.assignment_id, s.submission_id))

    def submission(self, course_id: str, student_id: str, assignment_id: str, submission_id: str) -> Submission:
        path = self._submissions(course_id, student_id, assignment_id) / check_id(submission_id, "submission id")
        if not path.is_dir():
            raise StorageError(404, f"no submission {submission_id} of {student_id} for {course_id}/{assignment_id}")
        return self._submission(course_id, student_id, assignment_id, path)

    def submission_files(self, submission: Submission) -> dict[str, str]:
        return encode_tree(submission.path)

    # --- feedback ------------------------------------------------------------------------------

    def release_feedback(self, course_id: str, student_id: str, assignment_id: str, timestamp: str,
                         files: dict[PurePosixPath, bytes]) -> Submission:
        """Store feedback HTML for the submission of ``student_id`` made at ``timestamp``."""
        matching = [s for s in self.submissions(course_id, student_id=student_id, assignment_id=assignment_id)
                    if s.timestamp == timestamp]
        if not matching:
            raise StorageError(404, f"no submission of {student_id} for {course_id}/{assignment_id} at {timestamp!r}")
        for name in files:
            if len(name.parts) != 1 or name.suffix != ".html":
                raise StorageError(400, f"feedback file {name.as_posix()!r}: only <notebook>.html files")
        submission = matching[-1]
        destination = self._feedback(course_id, student_id, assignment_id) / submission.submission_id
        self._move_into_place(self._stage(files), destination)
        return submission

    def feedback_checksums(self, submission: Submission) -> dict[str, str]:
        folder = self._feedback(submission.course_id, submission.student_id, submission.assignment_id) / submission.submission_id
        if not folder.is_dir():
            return {}
        return {path.stem: md5(path) for path in sorted(folder.glob("*.html"))}

    def feedback(self, course_id: str, student_id: str, assignment_id: str) -> list[dict]:
        """Released feedback of one student's submissions: timestamp and HTML files, oldest first."""
        answers = []
        for submission in self.submissions(course_id, student_id=student_id, assignment_id=assignment_id):
            folder = self._feedback(course_id, student_id, assignment_id) / submission.submission_id
            if folder.is_dir():
                answers.append({"submission_id": submission.submission_id, "timestamp": submission.timestamp,
                                "files": encode_tree(folder)})
        return answers
