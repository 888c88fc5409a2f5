"""What the executor preloads: the assignment's own imports, installed, not its helper modules."""

from __future__ import annotations

import nbformat

from grader.grading.executor.preload import assignment_preload


def _notebook(path, *sources):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    nbformat.write(notebook, path)


def test_preload_is_what_the_source_imports(tmp_path):
    _notebook(tmp_path / "a.ipynb",
              "%matplotlib inline\nimport numpy as np\nfrom torch import nn",
              "!pip list\nimport course_helpers\nimport no_such_library_here",
              "def f(:\n    pass  # a syntax error is skipped, not fatal")
    _notebook(tmp_path / "b.ipynb", "from math import sqrt\nimport numpy")
    (tmp_path / "course_helpers.py").write_text("X = 1\n")

    assert assignment_preload(tmp_path) == ["numpy", "torch", "torch.optim", "torch._dynamo", "math"]


def test_an_assignment_without_imports_preloads_nothing(tmp_path):
    _notebook(tmp_path / "a.ipynb", "x = 1")
    assert assignment_preload(tmp_path) == []


def test_finding_submodules_imports_nothing(tmp_path):
    """The grading process must not import torch just to learn that torch.optim exists (seconds
    before the zygote can start); missing submodules of installed packages are still left out."""
    import subprocess
    import sys

    _notebook(tmp_path / "a.ipynb", "import torch.optim\nimport numpy.linalg\nimport torch.no_such_part\nimport json")
    probe = (
        "import sys; from pathlib import Path; from grader.grading.executor.preload import assignment_preload; "
        f"print(assignment_preload(Path({str(tmp_path)!r}))); print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    lines = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines == ["['torch.optim', 'torch._dynamo', 'numpy.linalg', 'json']", "[]"]
