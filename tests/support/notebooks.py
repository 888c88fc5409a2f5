"""Course notebooks as tests: find them, read their smoke parameters, run them with papermill.

A lesson's ``parameters`` cell holds the full-lesson values; a trailing ``# smoke: <literal>``
comment on an assignment gives the value for the fast CPU run CI uses, so the two sets live side
by side in the notebook itself::

    num_epochs = 30  # smoke: 2
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader.resources import ASSIGNMENTS_SOURCE_DIR, COURSES_DIR

SMOKE_MARKER = "smoke:"


class NotebookError(RuntimeError):
    """A notebook is malformed or failed; the message names the notebook (and cell)."""


def find_notebooks(*roots: Path) -> list[Path]:
    """Every notebook under ``roots``, in a stable order, skipping checkpoints."""
    found = []
    for root in roots:
        found += [p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    return sorted(found)


def course_and_assignment_notebooks() -> list[Path]:
    return find_notebooks(COURSES_DIR, ASSIGNMENTS_SOURCE_DIR)


def parameters_cell_source(nb: nbformat.NotebookNode, path: Path) -> str:
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise NotebookError(f"{path}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    return cells[0].source


def smoke_parameters(source: str, path: Path | str = "<parameters>") -> dict:
    """Parse ``name = value  # smoke: literal`` lines of a parameters cell into {name: literal}."""
    smoke = {}
    comments = {
        token.start[0]: token.string
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    for node in ast.parse(source).body:
        comment = comments.get(node.end_lineno, "")
        if SMOKE_MARKER not in comment:
            continue
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise NotebookError(f"{path}: line {node.lineno}: a smoke value must follow a plain `name = value`")
        literal = comment.split(SMOKE_MARKER, 1)[1].strip()
        try:
            smoke[node.targets[0].id] = ast.literal_eval(literal)
        except (ValueError, SyntaxError) as error:
            raise NotebookError(f"{path}: line {node.lineno}: smoke value {literal!r} is not a literal") from error
    return smoke


def notebook_smoke_parameters(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    return smoke_parameters(parameters_cell_source(nb, path), path)


def cells_with_outputs(path: Path) -> list[int]:
    """Indices of code cells that carry outputs or an execution count (committed notebooks must not)."""
    nb = nbformat.read(path, as_version=4)
    return [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]


@dataclass(frozen=True)
class NotebookRun:
    path: Path
    output_path: Path
    parameters: dict


def run_notebook(path: Path, output_path: Path, *, parameters: dict, kernel_name: str | None = None) -> NotebookRun:
    """Execute ``path`` with papermill in its own folder (so lesson helpers import), injecting
    ``parameters``; on failure raise NotebookError naming the notebook, the cell and the error."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(path),
            str(output_path),
            parameters=parameters,
            cwd=str(path.parent),
            kernel_name=kernel_name,
            progress_bar=False,
        )
    except PapermillExecutionError as error:
        # papermill reports the failing cell's execution count; turn it into the cell's index.
        # Index among the source notebook's cells: leave out the cells papermill added (the
        # injected parameters and its error banners).
        added_tags = {"injected-parameters", "papermill-error-cell-tag"}
        failed = [
            c for c in nbformat.read(output_path, as_version=4).cells
            if not added_tags.intersection(c.get("metadata", {}).get("tags", []))
        ]
        index = next(
            (i for i, c in enumerate(failed) if c.cell_type == "code" and c.get("execution_count") == error.exec_count),
            None,
        )
        source = failed[index].source if index is not None else ""
        first_line = source.splitlines()[0] if source else ""
        raise NotebookError(
            f"{path}: cell {index} (execution {error.exec_count}) failed: {error.ename}: {error.evalue}\n"
            f"  cell begins: {first_line}"
        ) from None
    return NotebookRun(path, output_path, parameters)
