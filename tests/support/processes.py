"""Find processes a test started, by a tag placed in their environment (inherited by children)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def new_tag() -> tuple[str, str]:
    """(variable name, value) to put in the environment of what a test starts."""
    return "GRADER_TEST_TAG", uuid.uuid4().hex


def processes_with_tag(value: str) -> list[int]:
    needle = f"GRADER_TEST_TAG={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if needle in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found
