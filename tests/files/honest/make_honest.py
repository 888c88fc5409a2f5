"""Regenerate the honest submissions in tests/files/honest/: ``python tests/files/honest/make_honest.py``.

Each is a correct (or honestly slow) answer to the squares assignment (tests/files/squares), written
the way students write notebooks: progress bars, warnings, plots, files, widgets, long prints,
magics. Where the score could depend on how the code runs, the behaviour sits inside ``square``,
so it happens in the graded test cells too (nbgrader zeroes a graded cell with stderr output).
``tests/grading/test_autograde_equivalence.py`` grades them with `grader` and with `nbgrader autograde` and
requires the same gradebook rows and the same autograded files. A folder holds the notebook and
whatever else the student handed in (``data/``).
"""

from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from make_fixtures import answer, source_notebook  # noqa: E402

# name: (answer cell, cells the student added after it, extra files handed in)
HONEST = {
    # tqdm.auto over minibatches, in square itself: a widget bar in a kernel, never stderr.
    "progress-bars": (
        "import numpy as np\nfrom tqdm.auto import tqdm, trange\n\n"
        "def square(x):\n"
        "    values = np.atleast_1d(np.asarray(x, dtype=float))\n"
        "    out = np.empty_like(values)\n"
        "    for start in tqdm(range(0, len(values), 2), desc='minibatches', leave=False):\n"
        "        out[start:start + 2] = values[start:start + 2] ** 2\n"
        "    return out.reshape(np.shape(x)) if np.ndim(x) else out[0]\n\n"
        "for epoch in trange(3, desc='epochs'):\n"
        "    loss = 1 / (epoch + 1)",
        ["from tqdm.auto import tqdm\nfor _ in tqdm(range(5)):\n    pass\nprint('done')"],
        {},
    ),
    # Appends to a log with open(...).write: an unclosed file, a ResourceWarning a kernel hides.
    "log-file": (
        "def square(x):\n"
        "    open('calls.log', 'a').write(f'square({x!r})\\n')\n"
        "    return x * x",
        ["print(open('calls.log').read())"],
        {},
    ),
    # Warnings: a library's RuntimeWarning and DeprecationWarning in the answer cell (ungraded), and
    # the student's own warnings.warn inside square (stderr in every test cell: zero, in both).
    "warnings": (
        "import warnings\nimport numpy as np\n\n"
        "np.log(np.array([0.0, 1.0]))  # RuntimeWarning: divide by zero\n"
        "warnings.warn('using the slow path', DeprecationWarning)\n\n"
        "def square(x):\n"
        "    warnings.warn('square is not vectorised yet')\n"
        "    return x * x",
        [],
        {},
    ),
    # Only library warnings (ignored DeprecationWarning from a module; numpy's errstate) in square.
    "quiet-warnings": (
        "import numpy as np\nimport types\n\n"
        "helpers = types.ModuleType('helpers')\n"
        "exec('import warnings\\ndef legacy(v):\\n    warnings.warn(\"legacy\", DeprecationWarning)\\n    return v', helpers.__dict__)\n\n"
        "def square(x):\n"
        "    with np.errstate(over='ignore'):\n"
        "        return helpers.legacy(x) * x",
        [],
        {},
    ),
    # Plots: an inline figure, plt.show(), and a saved figure that nbgrader keeps in autograded/.
    "plots": (
        "import matplotlib.pyplot as plt\nimport numpy as np\n%matplotlib inline\n\n"
        "def square(x):\n    return x * x\n\n"
        "xs = np.linspace(-2, 2, 21)\n"
        "fig, ax = plt.subplots(figsize=(3, 2))\n"
        "ax.plot(xs, square(xs))\nax.set_title('squares')\n"
        "fig.savefig('squares.png')\nplt.show()",
        ["plt.hist(np.arange(10) % 3)\nplt.savefig('hist.png')"],
        {},
    ),
    # Results files: created, appended to a file the student handed in, in a sub-folder.
    "writes-files": (
        "import json, os\n\n"
        "def square(x):\n    return x * x\n\n"
        "with open('results.csv', 'w') as out:\n"
        "    out.write('x,square\\n' + ''.join(f'{i},{square(i)}\\n' for i in range(5)))\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "with open('outputs/summary.json', 'w') as out:\n"
        "    json.dump({'max': square(4)}, out)\n"
        "with open('data/notes.txt', 'a') as notes:\n"
        "    notes.write('ran the notebook\\n')",
        [],
        {"data/notes.txt": "my notes\n"},
    ),
    # ipywidgets: a slider, interact, and a widget shown from inside square.
    "widgets": (
        "import ipywidgets as widgets\nfrom IPython.display import display\n\n"
        "slider = widgets.IntSlider(value=3, min=0, max=10, description='x')\n"
        "display(slider)\n"
        "widgets.interact(lambda x: x * x, x=slider)\n\n"
        "def square(x):\n"
        "    display(widgets.HTML(f'<b>{x}</b> squared'))\n"
        "    return x * x",
        ["slider"],
        {},
    ),
    # Long prints in the answer cell and in square.
    "long-prints": (
        "for step in range(3000):\n"
        "    print(f'step {step:05d} loss {1 / (step + 1):.6f}')\n"
        "print('x' * 200_000)\n\n"
        "def square(x):\n"
        "    print('\\n'.join(f'checking {x} ({i})' for i in range(500)))\n"
        "    return x * x",
        [],
        {},
    ),
    # Magics: %%time on the answer cell, %time and %timeit-free line magics, %matplotlib inline.
    "magics": (
        "%%time\n"
        "def square(x):\n    return x * x\n\n"
        "result = [square(i) for i in range(1000)]",
        ["%matplotlib inline\n%time total = sum(square(i) for i in range(100))\n%who_ls function",
         "%%capture out\nprint('captured')"],
        {},
    ),
    # A beginner's input() with a fallback: a kernel raises StdinNotImplementedError (no stdin),
    # which `except EOFError` does not catch, so square is never defined: zero in both.
    "asks-for-input": (
        "try:\n    n = int(input('how many squares? '))\nexcept EOFError:\n    n = 3\n\n"
        "def square(x):\n    return x * x",
        [],
        {},
    ),
    # A training loop stopped by the interrupt at the cell timeout, caught as students catch it.
    "stopped-early": (
        "import time\n\n"
        "def square(x):\n    return x * x\n\n"
        "try:\n    while True:\n        time.sleep(0.1)\nexcept KeyboardInterrupt:\n    print('stopped early')",
        [],
        {},
    ),
    # The same, inside square: the first test cell runs into the timeout, the student's code catches
    # the interrupt and the assertion passes, but nbgrader still records the timeout as an error
    # (Execute.error_on_timeout) and scores that cell zero.
    "interrupt-caught-in-test": (
        "import time\n_trained = False\n\n"
        "def square(x):\n"
        "    global _trained\n"
        "    if not _trained:\n"
        "        _trained = True\n"
        "        try:\n            while True:\n                time.sleep(0.1)  # train until stopped\n"
        "        except KeyboardInterrupt:\n            print('stopped early')\n"
        "    return x * x",
        [],
        {},
    ),
    # Slow: square's first call takes 2 s. The course's timeout (ExecutePreprocessor.timeout = 4)
    # allows it; the lower-priority NotebookClient.timeout (1) would not.
    "slow-in-time": (
        "import time\n_warm = False\n\n"
        "def square(x):\n"
        "    global _warm\n"
        "    if not _warm:\n        time.sleep(2)\n        _warm = True\n"
        "    return x * x",
        [],
        {},
    ),
    # Too slow: square's first call takes 7 s, past the course's 4 s but within Execute's default
    # of 30 s: nbgrader interrupts test_positive (zero for it), the later tests pass.
    "too-slow": (
        "import time\n_warm = False\n\n"
        "def square(x):\n"
        "    global _warm\n"
        "    if not _warm:\n        _warm = True\n        time.sleep(7)\n"
        "    return x * x",
        [],
        {},
    ),
}


def release_notebook():
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, ComputeChecksums, LockCells

    release, resources = copy.deepcopy(source_notebook()), {}
    for preprocessor in (ClearSolutions(), ClearHiddenTests(), LockCells(), ComputeChecksums()):
        release, resources = preprocessor.preprocess(release, resources)
    return release


def main():
    release = release_notebook()
    for name, (code, added, files) in HONEST.items():
        folder = HERE / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        nb = answer(release, code)
        if added:
            nb.cells += [new_markdown_cell("My own checks:")] + [new_code_cell(cell) for cell in added]
        nbformat.write(nb, folder / "squares.ipynb")
        for relative, content in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(content)


if __name__ == "__main__":
    main()
