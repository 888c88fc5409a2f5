"""Find what a student changed that they should not have, and repair what nbgrader would not.

nbgrader itself restores the source, type and lock of known cells (``OverwriteCells``) and drops
duplicated grade ids (``DeduplicateIds``). Before that runs, this module makes every submission
readable and complete: malformed JSON or nbformat 3 is turned into a valid nbformat 4 notebook
(or, when nothing can be recovered, the unmodified release), deleted graded or locked cells are
put back from the release, and duplicated cell ids are renumbered (by nbformat). Every finding is reported in
words an instructor can act on; the student's original files are never modified.

nbgrader cannot grade a notebook whose nbgrader metadata disagrees with its gradebook (it stops
with an error and the submission is left ungraded), so the metadata is repaired from the release
before nbgrader sees it, and the notebook is graded exactly as the honest one would be:

- a cell with a grade id the release does not have (an added "test" worth points) loses its
  nbgrader metadata: it runs as an ordinary cell and is worth nothing;
- a cell with a known grade id gets the release's nbgrader metadata back (a solution cell
  re-marked as graded, points or locks edited);
- a grade id that appears more than once keeps its metadata on one copy only: the copy that sits
  where the release has the cell (between the graded cells that surround it in the release),
  preferring, among those, one whose source is the release's, then the last. nbgrader keeps the
  *first* copy, so a decoy placed before the real test (``pass`` with the test's grade id) would
  otherwise be the one graded; here the other copies become ordinary cells, as nbgrader's
  ``DeduplicateIds`` makes them, and keep running (they may define what later cells use).
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.flags import Flag
from grader.regular_files import NotRegularFile, read_regular_file


@dataclass
class Inspection:
    notebook: nbformat.NotebookNode
    changes: list[str] = field(default_factory=list)

    @property
    def flags(self) -> list[Flag]:
        """The changes as ``tamper`` flags."""
        return [Flag("tamper", change) for change in self.changes]


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _is_protected(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade") or meta.get("locked") or meta.get("solution"))


def _load(path: Path, release: nbformat.NotebookNode, changes: list[str]) -> nbformat.NotebookNode:
    try:
        raw = read_regular_file(path)  # never follows a link the student left in its place
    except NotRegularFile as error:
        changes.append(f"{path.name}: not a regular file ({error}); graded as the unmodified release")
        return copy.deepcopy(release)
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


def _strip_unknown(notebook, release, name: str, changes: list[str]) -> None:
    """Cells with nbgrader metadata the release does not know become ordinary cells."""
    known = {_grade_id(cell) for cell in release.cells if _grade_id(cell)}
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if grade_id in known:
            continue
        del cell.metadata["nbgrader"]
        if grade_id is None:
            if isinstance(meta, dict) and any(meta.get(key) for key in ("grade", "solution", "locked", "task")):
                changes.append(f"{name}: a cell carries nbgrader metadata without a grade id; "
                               "graded as an ordinary cell (worth nothing)")
        else:
            points = f", {meta.get('points')} points" if isinstance(meta, dict) and meta.get("points") else ""
            changes.append(f"{name}: unknown grade id {grade_id!r}{points} (cell added or metadata edited); "
                           "its nbgrader metadata removed, graded as an ordinary cell (worth nothing)")


def _keep_one_copy(notebook, release, name: str, changes: list[str]) -> None:
    """Of a grade id that appears more than once, only the copy where the release has it stays graded."""
    positions: dict[str, list[int]] = {}
    for index, cell in enumerate(notebook.cells):
        if _grade_id(cell) is not None:
            positions.setdefault(_grade_id(cell), []).append(index)
    release_order = [_grade_id(cell) for cell in release.cells if _grade_id(cell)]
    originals = {_grade_id(cell): cell for cell in release.cells if _grade_id(cell)}
    for grade_id, indices in positions.items():
        if len(indices) == 1:
            continue
        rank = release_order.index(grade_id)
        # The nearest graded cells around it in the release that appear once in the submission.
        single = {g: p[0] for g, p in positions.items() if len(p) == 1}
        before = [single[g] for g in release_order[:rank] if g in single]
        after = [single[g] for g in release_order[rank + 1:] if g in single]
        low, high = max(before, default=-1), min(after, default=len(notebook.cells))

        # Bound now: the key is used at once, but the loop variables must not be read late.
        def preference(index: int, low=low, high=high, original=originals[grade_id]) -> tuple:
            cell = notebook.cells[index]
            return (low < index < high, cell.source == original.source, index)

        keep = max(indices, key=preference)
        for index in indices:
            if index != keep:
                del notebook.cells[index].metadata["nbgrader"]
        changes.append(f"{name}: cell {grade_id!r} appears {len(indices)} times; only the copy where the release "
                       f"has it (cell {keep + 1}) is graded, the others run as ordinary cells")


def _restore_metadata(notebook, release, name: str, changes: list[str]) -> None:
    """Report edits nbgrader will undo (source of locked cells, types) and put the release's
    nbgrader metadata back on every known cell, so nbgrader's gradebook and the notebook agree."""
    originals = {_grade_id(cell): cell for cell in release.cells if _grade_id(cell)}
    for cell in notebook.cells:
        grade_id = _grade_id(cell)
        if grade_id is None:
            continue
        original = originals[grade_id]
        if cell.cell_type != original.cell_type:
            changes.append(f"{name}: cell {grade_id!r} changed from {original.cell_type} to {cell.cell_type}; restored")
        if cell.metadata.get("nbgrader") != original.metadata.get("nbgrader"):
            edited = sorted(key for key in set(cell.metadata["nbgrader"]) | set(original.metadata["nbgrader"])
                            if cell.metadata["nbgrader"].get(key) != original.metadata["nbgrader"].get(key))
            changes.append(f"{name}: nbgrader metadata of cell {grade_id!r} edited ({', '.join(edited)}); restored")
            cell.metadata["nbgrader"] = copy.deepcopy(original.metadata["nbgrader"])
        if original.metadata["nbgrader"].get("locked") and cell.source != original.source:
            changes.append(f"{name}: locked cell {grade_id!r} edited; original restored")


def inspect_submission(path: Path, release: nbformat.NotebookNode) -> Inspection:
    """Read a submitted notebook against its release version; return it repaired, with findings."""
    changes: list[str] = []
    notebook = _load(path, release, changes)
    _strip_unknown(notebook, release, path.name, changes)
    _keep_one_copy(notebook, release, path.name, changes)
    _restore_metadata(notebook, release, path.name, changes)
    _restore_deleted(notebook, release, path.name, changes)
    return Inspection(notebook, changes)
