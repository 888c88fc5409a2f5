"""Which modules the executor imports once before forking: those the assignment itself imports.

Preloading a library saves every submission its import (torch: ~1 s), but every module in the
zygote makes each fork dearer (page tables to copy: ~50 ms more per submission with tensorflow
loaded than without). So the zygote imports what the assignment's source notebooks import,
plus the submodules those libraries load lazily on first use, and nothing else. A student who
imports something more still can; that submission pays for its own import.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
from pathlib import Path

import nbformat

# Submodules a library imports lazily on first use, in every child again unless preloaded.
IMPLIED = {
    # torch's optimisers import torch._dynamo at their first step (~0.9 s in a fresh process).
    "torch": ["torch.optim", "torch._dynamo"],
    # The inline backend of the executor's shell draws with pyplot.
    "matplotlib": ["matplotlib.pyplot"],
}


def _imported_modules(source: str) -> list[str]:
    """Module names a cell imports, in order; IPython magics and shell lines are skipped."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _installed(name: str) -> bool:
    """Whether ``name`` can be imported, found without importing anything.

    ``importlib.util.find_spec("torch.optim")`` imports ``torch`` to find its submodule: seconds, in
    the grading process, before the zygote could even start. So packages are walked down by path.
    """
    top, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(top)
        for depth in range(1, len(rest) + 1):
            if spec is None or spec.submodule_search_locations is None:
                return False
            spec = importlib.machinery.PathFinder.find_spec(".".join([top, *rest[:depth]]), spec.submodule_search_locations)
        return spec is not None
    except (ImportError, ValueError):
        return False


def assignment_preload(source_dir: Path) -> list[str]:
    """The modules to preload for the notebooks in ``source_dir``, installed ones only, in order."""
    wanted: list[str] = []
    for notebook_path in sorted(Path(source_dir).glob("*.ipynb")):
        notebook = nbformat.read(notebook_path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                for name in _imported_modules(cell.source):
                    wanted += [name, *IMPLIED.get(name.split(".")[0], [])]
    # A module of the assignment's own folder (a helper shipped with it) is imported per submission.
    local = {path.stem for path in Path(source_dir).glob("*.py")}
    return [name for name in dict.fromkeys(wanted) if name.split(".")[0] not in local and _installed(name)]
