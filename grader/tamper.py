"""Find what a student changed that they should not have, and repair what nbgrader would not.

nbgrader itself restores the source, type and lock of known cells (``OverwriteCells``) and drops
duplicated grade ids (``DeduplicateIds``). Before that runs, this module makes every submission
readable and complete: malformed JSON or nbformat 3 is turned into a valid nbformat 4 notebook
(or, when nothing can be recovered, the unmodified release), deleted graded or locked cells are
put back from the release, and duplicated cell ids are renumbered (by nbformat). Every finding is reported in
words an instructor can act on; the student's original files are never modified.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat


@dataclass
class Inspection:
    notebook: nbformat.NotebookNode
    changes: list[str] = field(default_factory=list)


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _is_protected(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade") or meta.get("locked") or meta.get("solution"))


def _load(path: Path, release: nbformat.NotebookNode, changes: list[str]) -> nbformat.NotebookNode:
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        changes.append(f"{path.name}: not valid JSON ({error}); graded as the unmodified release")
        return copy.deepcopy(release)
    version = data.get("nbformat") if isinstance(data, dict) else None
    if version not in (3, 4):
        changes.append(f"{path.name}: not a notebook (nbformat={version!r}); graded as the unmodified release")
        return copy.deepcopy(release)
    if version == 3:
        changes.append(f"{path.name}: nbformat 3, converted to nbformat 4")
    else:
        ids = [cell.get("id") for cell in data.get("cells", []) if isinstance(cell, dict) and cell.get("id")]
        for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
            # nbformat renumbers duplicates when it reads the notebook; report them here.
            changes.append(f"{path.name}: duplicated cell id {duplicate!r}, renumbered")
    try:
        notebook = nbformat.reads(raw.decode(), as_version=4)
    except Exception as error:  # nbformat raises several types for broken structure
        changes.append(f"{path.name}: unreadable notebook ({error}); graded as the unmodified release")
        return copy.deepcopy(release)
    return notebook


def _restore_deleted(notebook, release, name: str, changes: list[str]) -> None:
    present = {_grade_id(cell) for cell in notebook.cells}
    release_order = [_grade_id(cell) for cell in release.cells]
    for position, cell in enumerate(release.cells):
        grade_id = _grade_id(cell)
        if grade_id is None or grade_id in present or not _is_protected(cell):
            continue
        # Put it back after the nearest earlier graded cell that is still there.
        earlier = [g for g in release_order[:position] if g in present]
        insert_at = 0
        if earlier:
            insert_at = 1 + max(i for i, c in enumerate(notebook.cells) if _grade_id(c) == earlier[-1])
        restored = copy.deepcopy(cell)
        restored["id"] = uuid.uuid4().hex[:8]
        notebook.cells.insert(insert_at, restored)
        present.add(grade_id)
        changes.append(f"{name}: cell {grade_id!r} was deleted; restored from the release")


def _report_edits(notebook, release, name: str, changes: list[str]) -> None:
    """Report edits nbgrader will undo (source of locked cells, types, metadata, duplicates)."""
    originals = {_grade_id(cell): cell for cell in release.cells if _grade_id(cell)}
    counts: dict[str, int] = {}
    for cell in notebook.cells:
        grade_id = _grade_id(cell)
        if grade_id is None:
            continue
        counts[grade_id] = counts.get(grade_id, 0) + 1
        original = originals.get(grade_id)
        if original is None:
            changes.append(f"{name}: unknown grade id {grade_id!r} (metadata edited?)")
            continue
        if cell.cell_type != original.cell_type:
            changes.append(f"{name}: cell {grade_id!r} changed from {original.cell_type} to {cell.cell_type}; restored")
        if cell.metadata.get("nbgrader") != original.metadata.get("nbgrader"):
            changes.append(f"{name}: nbgrader metadata of cell {grade_id!r} edited; restored")
        if original.metadata["nbgrader"].get("locked") and cell.source != original.source:
            changes.append(f"{name}: locked cell {grade_id!r} edited; original restored")
    for grade_id, count in counts.items():
        if count > 1:
            changes.append(f"{name}: cell {grade_id!r} appears {count} times; only one copy is graded")


def inspect_submission(path: Path, release: nbformat.NotebookNode) -> Inspection:
    """Read a submitted notebook against its release version; return it repaired, with findings."""
    changes: list[str] = []
    notebook = _load(path, release, changes)
    _report_edits(notebook, release, path.name, changes)
    _restore_deleted(notebook, release, path.name, changes)
    return Inspection(notebook, changes)
