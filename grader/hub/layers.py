"""Configuration layers: read a YAML file, check it against the platform's JSON schema, merge layers.

The hub's settings are the merge, in this order, of: defaults in code, the secrets file in the data
folder, the YAML file the admin edits, and ``AICOURSE_*`` environment variables. Each file layer is
validated on its own, so an error names the file and the key that is wrong.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from grader.resources import SCHEMA_PATH

# Keys whose values are paths; a relative path in a file means relative to that file's folder.
_PATH_KEYS = {("data_dir",), ("content_dir",), ("exchange_dir",), ("courses", "*", "course_dir"), ("spawner", "homes_dir"),
              ("https", "certificate"), ("https", "key"), ("branding", "logo")}


class ConfigError(ValueError):
    """A configuration file or value the hub cannot use; the message names the source and key."""


def merge_layers(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge configuration layers, later ones winning; pure, the inputs are not changed.

    Mappings merge key by key, so a layer can change one course's port without restating the
    course; any other value (lists included) replaces the earlier one; ``None`` removes the key.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if value is None:
                merged.pop(key, None)
            elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = merge_layers(merged[key], value)
            elif isinstance(value, Mapping):
                merged[key] = merge_layers(value)
            else:
                merged[key] = list(value) if isinstance(value, (list, tuple)) else value
    return merged


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _key_path(parts) -> str:
    return ".".join(str(part) for part in parts) or "(top level)"


def schema_errors(layer: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> list[str]:
    """Every way ``layer`` breaks the schema, one line each, naming the key (``courses.ai101.port``)."""
    validator = jsonschema.Draft202012Validator(schema or load_schema())
    lines = []
    for error in sorted(validator.iter_errors(layer), key=lambda e: list(map(str, e.absolute_path))):
        where = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            known = set(error.schema.get("properties", {}))
            for unknown in sorted(set(error.instance) - known):
                lines.append(f"{_key_path([*where, unknown])}: unknown setting")
            continue
        lines.append(f"{_key_path(where)}: {error.message}")
    return lines


def validate_layer(layer: Mapping[str, Any], source: str, schema: Mapping[str, Any] | None = None) -> None:
    errors = schema_errors(layer, schema)
    if errors:
        raise ConfigError(f"{source}: " + f"\n{source}: ".join(errors))


def _resolve_paths(layer: dict[str, Any], base: Path) -> dict[str, Any]:
    def resolve(node: Any, pattern: tuple[str, ...]) -> None:
        if not isinstance(node, dict) or not pattern:
            return
        head, rest = pattern[0], pattern[1:]
        keys = list(node) if head == "*" else [head] if head in node else []
        for key in keys:
            if rest:
                resolve(node[key], rest)
            elif isinstance(node[key], str):
                node[key] = str((base / Path(node[key]).expanduser()).resolve())

    for pattern in _PATH_KEYS:
        resolve(layer, pattern)
    return layer


def read_layer(path: Path, *, required: bool, private: bool = False) -> dict[str, Any]:
    """Read and validate one YAML layer; an absent optional file is an empty layer.

    ``private`` files (secrets) must not be readable by other users.
    """
    path = Path(path)
    if not path.exists():
        if required:
            raise ConfigError(f"{path}: configuration file not found")
        return {}
    if private and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: holds secrets but other users can read it; run: chmod 600 {path}")
    try:
        layer = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(layer, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, found {type(layer).__name__}")
    validate_layer(layer, str(path))
    return _resolve_paths(layer, path.parent)
