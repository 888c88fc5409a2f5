"""The hub's settings: embedded defaults, overridden by ``AICOURSE_*`` environment variables.

Defaults give a working demo hub at http://127.0.0.1:8000 with its state in ``.hub-data/`` of the
repository; tests point every port and the data folder somewhere private.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from grader.course import Course
from grader.paths import REPO_ROOT

ENV_PREFIX = "AICOURSE_"


@dataclass(frozen=True)
class HubSettings:
    data_dir: Path = REPO_ROOT / ".hub-data"
    ip: str = "127.0.0.1"
    port: int = 8000
    hub_port: int = 8081
    proxy_api_port: int = 8001
    course_id: str = "ai101"
    formgrader_port: int = 8010
    instructors: tuple[str, ...] = ("instructor",)
    students: tuple[str, ...] = ("student",)
    # Failed logins before a user is locked out for lockout_seconds.
    allowed_failed_logins: int = 5
    lockout_seconds: int = 600

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'jupyterhub.sqlite'}"

    @property
    def homes_dir(self) -> Path:
        return self.data_dir / "homes"

    @property
    def course(self) -> Course:
        return Course(
            course_id=self.course_id,
            course_dir=self.data_dir / "courses" / self.course_id,
            exchange_dir=self.data_dir / "exchange",
        )


def _split_names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


def settings_from_env(environ: Mapping[str, str] = os.environ) -> HubSettings:
    """Build settings from ``AICOURSE_*`` variables; an unparsable value names the variable."""
    overrides: dict = {}
    converters = {
        "DATA_DIR": ("data_dir", lambda v: Path(v).resolve()),
        "IP": ("ip", str),
        "PORT": ("port", int),
        "HUB_PORT": ("hub_port", int),
        "PROXY_API_PORT": ("proxy_api_port", int),
        "COURSE_ID": ("course_id", str),
        "FORMGRADER_PORT": ("formgrader_port", int),
        "INSTRUCTORS": ("instructors", _split_names),
        "STUDENTS": ("students", _split_names),
    }
    for suffix, (attribute, convert) in converters.items():
        name = ENV_PREFIX + suffix
        if name in environ:
            try:
                overrides[attribute] = convert(environ[name])
            except ValueError as error:
                raise ValueError(f"environment variable {name}={environ[name]!r}: {error}") from error
    return HubSettings(**overrides)
