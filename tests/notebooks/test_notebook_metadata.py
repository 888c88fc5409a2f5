"""Every committed notebook opens clean in JupyterLab: not "modified" before the student types.

When a kernel connects, Lab writes the kernel's ``kernelspec`` and ``language_info`` into the
notebook's metadata; a value that differs from the file's (compared as JSON) marks the notebook
dirty, and the student is asked to save what they never touched. So each committed lesson and
assignment carries exactly what the platform's kernel reports, with no outputs.

The kernel's ``language_info.version`` is the interpreter's patch version (``3.11.7``): it is
compared with this interpreter's, the one the hub runs kernels with. After a Python upgrade, rewrite
it in every notebook (the failure message says how).
"""

from __future__ import annotations

import json
import platform

import pytest
from ipykernel.ipkernel import IPythonKernel
from jupyter_client.kernelspec import KernelSpecManager

from grader.resources import REPO_ROOT

NOTEBOOKS = sorted([*(REPO_ROOT / "courses").rglob("*.ipynb"), *(REPO_ROOT / "assignments").rglob("*.ipynb")])
NOTEBOOKS = [path for path in NOTEBOOKS if ".ipynb_checkpoints" not in path.parts]
FIX = "rewrite them with the kernel's values: .venv/bin/python -m tests.notebooks.test_notebook_metadata"


def _kernel_metadata() -> dict:
    spec = KernelSpecManager().get_kernel_spec("python3")
    return {
        # What Lab's NotebookPanel._updateSpec and _updateLanguage set when the kernel connects.
        "kernelspec": {"name": "python3", "display_name": spec.display_name, "language": spec.language},
        "language_info": {**IPythonKernel.language_info, "version": platform.python_version()},
    }


def test_the_committed_notebooks_are_found():
    names = {path.relative_to(REPO_ROOT).parts[0] for path in NOTEBOOKS}
    assert names == {"courses", "assignments"} and len(NOTEBOOKS) >= 20, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(REPO_ROOT)) for p in NOTEBOOKS])
def test_a_notebook_has_the_kernels_metadata_and_no_outputs(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    expected = _kernel_metadata()
    assert notebook["metadata"].get("kernelspec") == expected["kernelspec"], f"{path}: kernelspec; {FIX}"
    assert notebook["metadata"].get("language_info") == expected["language_info"], f"{path}: language_info; {FIX}"
    # nbformat 4.5 (cell ids): Lab upgrades an older minor version, which also marks it dirty.
    assert (notebook["nbformat"], notebook["nbformat_minor"]) == (4, 5)
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code), path
    assert all("id" in cell for cell in notebook["cells"]), path


if __name__ == "__main__":
    # Writes the kernel's metadata into every committed notebook, formatted as nbformat writes it.
    for path in NOTEBOOKS:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        notebook["metadata"].update(_kernel_metadata())
        path.write_text(json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
