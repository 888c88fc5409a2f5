"""Regenerate the fixture notebooks in tests/files/: ``python tests/files/make_fixtures.py``.

``python tests/files/make_fixtures.py CASE...`` writes only those submissions (e.g. a new case),
leaving ``squares.ipynb`` and every other fixture as they are (cell ids are random).

``squares/squares.ipynb`` is a tiny nbgrader source assignment (4 autograded points, 1 written
point); every other notebook is a *student submission* of it, named by the case it exercises.
Submissions are derived from the release version so they look exactly like a student's file.
The placeholder ``@COURSE@`` is replaced by the tests with the real course directory.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent


def _grade(cell, grade_id, *, grade=False, solution=False, locked=False, points=0):
    meta = {"grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id, "schema_version": 3}
    if grade:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    return cell


def source_notebook():
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        _grade(new_markdown_cell("# Squares\nImplement `square`. 4 autograded points, 1 written point."), "intro", locked=True),
        _grade(new_code_cell("def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION"), "square_answer", solution=True),
        _grade(new_code_cell("assert square(3) == 9"), "test_positive", grade=True, locked=True, points=1),
        _grade(new_code_cell(
            "assert square(-2) == 4\n### BEGIN HIDDEN TESTS\nassert square(1.5) == 2.25, 'hidden: fractions'\n### END HIDDEN TESTS"
        ), "test_negative", grade=True, locked=True, points=2),
        _grade(new_code_cell("import numpy as np\nassert np.allclose(square(np.arange(3)), [0, 1, 4])"), "test_arrays", grade=True, locked=True, points=1),
        _grade(new_markdown_cell("Why is `square` never negative?\n\nYOUR ANSWER HERE"), "why_answer", grade=True, solution=True, points=1),
    ]
    return nb


def answer(release, code):
    nb = copy.deepcopy(release)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "square_answer")
    cell.source = code
    return nb


def cell_by_id(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def submissions(release):
    """{file name: notebook or raw text} for every case."""
    ok = "def square(x):\n    return x * x"
    cases = {
        "solution.ipynb": answer(release, ok),
        "blank.ipynb": copy.deepcopy(release),
        "wrong.ipynb": answer(release, "def square(x):\n    return abs(x) * x"),
        "raises.ipynb": answer(release, "def square(x):\n    raise ValueError('not yet')"),
        "infinite-loop.ipynb": answer(release, ok + "\nwhile True:\n    pass"),
        "ignores-interrupt.ipynb": answer(release, ok + "\nimport signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"),
        "os-exit.ipynb": answer(release, ok + "\nimport os\nos._exit(0)"),
        "segfault.ipynb": answer(release, ok + "\nimport sys\nsys.setrecursionlimit(1 << 30)\nnested = []\nfor _ in range(10 ** 6):\n    nested = [nested]\nrepr(nested)  # C recursion overflows the stack: SIGSEGV"),
        "fork-bomb.ipynb": answer(release, ok + "\nimport os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
        "memory-hog.ipynb": answer(release, ok + "\nimport numpy as np\nhog = [np.ones(1 << 20) for _ in range(100000)]  # 8 MB at a time"),
        "runaway-output.ipynb": answer(release, ok + "\nwhile True:\n    print('spam ' * 200)"),
        "reads-secrets.ipynb": answer(release, ok + "\nfor path in ['@COURSE@/gradebook.db', '@COURSE@/source/squares/squares.ipynb',"
                                      " '@COURSE@/submitted/solution/squares/squares.ipynb']:\n"
                                      "    try:\n        open(path, 'rb').read(16)\n        print('READ', path)\n"
                                      "    except OSError as error:\n        print('DENIED', path, type(error).__name__)"),
    }
    tampered = answer(release, ok)
    cell_by_id(tampered, "test_negative").source = "assert True"
    cases["tampered-tests.ipynb"] = tampered
    deleted = answer(release, ok)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_negative"]
    cases["deleted-tests.ipynb"] = deleted
    retyped = answer(release, ok)
    test = cell_by_id(retyped, "test_positive")
    retyped.cells[retyped.cells.index(test)] = nbformat.from_dict(
        {"cell_type": "markdown", "id": test["id"], "metadata": test.metadata, "source": test.source})
    cases["changed-cell-type.ipynb"] = retyped
    duplicated = answer(release, ok)
    duplicated.cells[3]["id"] = duplicated.cells[2]["id"]
    # Raw JSON: nbformat.write would quietly renumber the duplicate.
    cases["duplicated-cell-ids.ipynb"] = json.dumps(duplicated, indent=1)
    metadata = answer(release, "def square(x):\n    return abs(x) * x")
    cell_by_id(metadata, "test_negative").metadata["nbgrader"]["points"] = 100
    cell_by_id(metadata, "test_negative").metadata["nbgrader"]["locked"] = False
    cases["metadata-changed.ipynb"] = metadata
    # A cell the student added, carrying grade metadata of a test that does not exist.
    added = answer(release, ok)
    added.cells.insert(2, _grade(new_code_cell("assert True"), "bonus_points", grade=True, locked=True, points=10))
    cases["added-graded-cell.ipynb"] = added
    # The solution cell re-marked as a graded cell worth points.
    remarked = answer(release, ok)
    cell_by_id(remarked, "square_answer").metadata["nbgrader"].update(grade=True, points=5)
    cases["remarked-solution.ipynb"] = remarked
    # A copy of a test cell (same grade id, `pass` as source) placed before the real one, with a
    # wrong answer: only the real test, restored where the release has it, may decide the score.
    duplicate_test = answer(release, "def square(x):\n    return abs(x) * x")
    real = cell_by_id(duplicate_test, "test_negative")
    copy_ = copy.deepcopy(real)
    copy_.source, copy_["id"] = "pass", "duplicate-test"
    duplicate_test.cells.insert(duplicate_test.cells.index(real), copy_)
    cases["duplicated-test-cell.ipynb"] = duplicate_test
    cases["malformed-json.ipynb"] = nbformat.writes(answer(release, ok))[:-40]
    cases["nbformat3.ipynb"] = nbformat.v3.nbjson.writes(nbformat.convert(answer(release, ok), 3))
    return cases


def main(only: list[str] | None = None):
    from nbgrader.preprocessors import ClearSolutions, ClearHiddenTests, ComputeChecksums, LockCells

    source = source_notebook()
    if only:
        source = nbformat.read(HERE / "squares" / "squares.ipynb", as_version=4)
    else:
        nbformat.write(source, HERE / "squares" / "squares.ipynb")
    # The release as nbgrader makes it (solutions and hidden tests out, checksums in).
    release, resources = copy.deepcopy(source), {}
    for preprocessor in (ClearSolutions(), ClearHiddenTests(), LockCells(), ComputeChecksums()):
        release, resources = preprocessor.preprocess(release, resources)
    cases = submissions(release)
    unknown = sorted(set(only or []) - {name.removesuffix(".ipynb") for name in cases})
    if unknown:
        raise SystemExit(f"no such case: {', '.join(unknown)}")
    for name, content in cases.items():
        if only and name.removesuffix(".ipynb") not in only:
            continue
        path = HERE / "submissions" / name
        path.parent.mkdir(exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            nbformat.write(content, path)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
