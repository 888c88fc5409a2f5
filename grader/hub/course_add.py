"""Add a course to the hub by editing the admin's platform YAML, so nobody edits it by hand.

The file keeps its comments and layout: the new course is inserted as a block at the end of the
``courses:`` mapping, and the result is read back and checked, against the schema and against
what was meant, before it replaces the old file. The hub starts the course's formgrader on its
next start.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Sequence

import yaml

from grader.hub.layers import ConfigError, merge_layers, read_layer, validate_layer
from grader.hub.settings import DEFAULTS, layered_config, settings_from_config
from grader.hub.settings import config_path as default_config_path

FIRST_FORMGRADER_PORT = 8010
_COURSES_LINE = re.compile(r"^courses:\s*(#.*)?$")


def _next_free_port(layer: dict) -> int:
    merged = merge_layers(DEFAULTS, layer)
    used = {merged["port"], merged["hub_port"], merged["proxy_api_port"]}
    used |= {course["formgrader_port"] for course in merged["courses"].values()}
    # The hub's own services listen on loopback ports too (the HTTP exchange by default, 8011).
    if merged["exchange"]["backend"] == "http":
        used.add(merged["exchange"]["service_port"])
    if merged["seats"]["enabled"]:
        used.add(merged["seats"]["service_port"])
    course_ports = [course["formgrader_port"] for course in merged["courses"].values()]
    port = max(course_ports, default=FIRST_FORMGRADER_PORT - 1) + 1
    while port in used:
        port += 1
    return port


def _course_block(course_id: str, entry: dict, indent: str) -> list[str]:
    # JSON strings and lists of plain names are valid YAML, and need no quoting rules of our own.
    lines = [f"{indent}{course_id}:\n"]
    for key, value in entry.items():
        lines.append(f"{indent * 2}{key}: {json.dumps(value)}\n")
    return lines


def _insert_course(text: str, course_id: str, entry: dict) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if _COURSES_LINE.match(line)), None)
    if start is None:
        if any(line.startswith("courses:") for line in lines):
            raise ConfigError("courses: written on one line; write it as a block mapping to let `grader course add` edit it")
        return "".join(lines) + "\ncourses:\n" + "".join(_course_block(course_id, entry, "  "))
    end, indent = start, ""
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            break
        end = i
        indent = indent or line[: len(line) - len(line.lstrip())]
    block = _course_block(course_id, entry, indent or "  ")
    return "".join(lines[: end + 1] + block + lines[end + 1:])


def add_course(
    course_id: str,
    *,
    instructors: Sequence[str],
    graders: Sequence[str] = (),
    students: Sequence[str] = (),
    title: str = "",
    formgrader_port: int | None = None,
    config_file: Path | None = None,
) -> dict:
    """Add ``course_id`` to the platform YAML (default: ``$AICOURSE_CONFIG`` or
    ``hub_config/platform.yaml``); return the course's entry as written.

    The formgrader port defaults to the next one after the highest course port. A course that
    exists already, or a value the schema refuses, raises ConfigError and leaves the file as it was.
    """
    path = Path(config_file or default_config_path())
    layer = read_layer(path, required=True)
    if course_id in layer.get("courses", {}):
        raise ConfigError(f"{path}: courses.{course_id}: the course exists already")
    if not instructors:
        raise ConfigError(f"courses.{course_id}: name at least one instructor")
    entry = {
        **({"title": title} if title else {}),
        "formgrader_port": formgrader_port or _next_free_port(layer),
        "instructors": list(instructors),
        "graders": list(graders),
        "students": list(students),
    }
    new_layer = merge_layers(layer, {"courses": {course_id: entry}})
    validate_layer(new_layer, f"{path} (with course {course_id})")
    settings_from_config(layered_config(secrets={}, admin=new_layer, environ={}))  # e.g. a port used twice
    text = path.read_text()
    new_text = _insert_course(text, course_id, entry)
    expected = yaml.safe_load(text) or {}
    expected.setdefault("courses", {})
    expected["courses"][course_id] = entry
    if yaml.safe_load(new_text) != expected:
        raise ConfigError(f"{path}: could not add {course_id} without changing other settings; add it by hand")
    # Write beside the file and rename: a crash leaves the old file or the new one, never half.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(new_text)
    os.chmod(temporary, path.stat().st_mode & 0o777)
    os.replace(temporary, path)
    return entry
