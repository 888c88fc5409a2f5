"""Add a course to the hub by editing the admin's platform YAML, so nobody edits it by hand.

The file is edited with ruamel.yaml's round trip, as TLJH's ``tljh-config`` edits its config:
comments, key order, quoting and the other sections stay as the admin wrote them, and the new
course is added at the end of the ``courses:`` mapping. The result is read back and checked,
against the schema and against what was meant, before it replaces the old file. The hub starts the
course's formgrader on its next start.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError as RoundTripError
from ruamel.yaml.util import load_yaml_guess_indent

from grader.hub.layers import ConfigError, merge_layers, read_layer, validate_layer
from grader.hub.settings import DEFAULTS, layered_config, settings_from_config
from grader.hub.settings import config_path as default_config_path

FIRST_FORMGRADER_PORT = 8010
# Long lines stay on one line: the round trip must not re-wrap the admin's strings.
_NO_WRAP = 1 << 16


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


def _mapping_indent(text: str) -> int:
    """How far the file indents a mapping inside a mapping (2 when it has none)."""
    parent = None
    for line in text.splitlines():
        content = line.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        depth = len(line) - len(content)
        if parent is not None and depth > parent and not content.startswith("-"):
            return depth - parent
        # A key opening a block ("courses:", "courses:  # ..."), not one with a value on its line.
        key, colon, rest = content.partition(":")
        parent = depth if colon and not content.startswith("-") and (not rest.strip() or rest.strip().startswith("#")) else None
    return 2


def _round_trip(text: str, path: Path) -> tuple[YAML, Any]:
    """The document as ruamel.yaml's round trip reads it (quotes kept), and the same object to
    write it back in the file's own indentation."""
    round_trip = YAML(typ="rt")
    round_trip.preserve_quotes = True
    round_trip.width = _NO_WRAP
    try:
        # ruamel's guess: the block sequences' indent and their dash's offset (None without any).
        _, sequence_indent, dash_offset = load_yaml_guess_indent(text)
        document = round_trip.load(text)
    except RoundTripError as error:  # e.g. a key given twice, where PyYAML lets the last one win
        raise ConfigError(f"{path}: cannot be edited as YAML: {error}") from None
    mapping = _mapping_indent(text)
    if dash_offset is None:
        sequence_indent, dash_offset = mapping, 0
    round_trip.indent(mapping=mapping, sequence=sequence_indent, offset=dash_offset)
    return round_trip, document


def _inline_list(values: Sequence[str]) -> CommentedSeq:
    names = CommentedSeq(values)
    names.fa.set_flow_style()  # instructors: [ivy], as the shipped file writes them
    return names


def _with_course(text: str, path: Path, course_id: str, entry: dict) -> str:
    dumper, document = _round_trip(text, path)
    prefix = ""
    if document is None:  # an empty file, or comments only: they stay, the settings follow
        document, prefix = CommentedMap(), text if text.endswith("\n") or not text else text + "\n"
    if not isinstance(document, CommentedMap):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    courses = document.get("courses")
    if courses is None:
        courses = document["courses"] = CommentedMap()
    if not isinstance(courses, CommentedMap):
        raise ConfigError(f"{path}: courses: expected a mapping of course ids")
    courses.fa.set_block_style()  # `courses: {}` grows into a block the admin can read
    courses[course_id] = CommentedMap(
        (key, _inline_list(value) if isinstance(value, list) else value) for key, value in entry.items())
    out = io.StringIO(prefix)
    out.seek(0, io.SEEK_END)
    dumper.dump(document, out)
    return out.getvalue()


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
    new_text = _with_course(text, path, course_id, entry)
    expected = yaml.safe_load(text) or {}
    expected["courses"] = {**(expected.get("courses") or {}), course_id: entry}
    if yaml.safe_load(new_text) != expected:
        raise ConfigError(f"{path}: could not add {course_id} without changing other settings; add it by hand")
    # Write beside the file and rename: a crash leaves the old file or the new one, never half.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(new_text)
    os.chmod(temporary, path.stat().st_mode & 0o777)
    os.replace(temporary, path)
    return entry
