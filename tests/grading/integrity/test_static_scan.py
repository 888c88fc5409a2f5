"""grader.grading.integrity.static_scan: honest work is never flagged, and the known tricks always are.

Honest: every student cell of the assignments (their solution versions, as if submitted), every
code cell of the lessons, the squares solution and wrong answer, and snippets of the ordinary
things students write (progress bars, files, plots, magics, warnings, helpers, classes...).
Attacks: snippets of each trick, plain and disguised, each expected under its group.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.flags import Flag
from grader.grading.integrity.static_scan import (
    DYNAMIC,
    FRAMES,
    GROUPS,
    IPYTHON,
    LOWLEVEL,
    MAX_FLAGS_PER_FILE,
    MONKEYPATCH,
    RIGGED,
    flag_group,
    scan_notebook,
    scan_python_source,
    scan_submission,
)
from tests.support import FIXTURES

ROOT = Path(__file__).resolve().parents[3]
FILES = FIXTURES
ASSIGNMENTS = sorted((ROOT / "assignments" / "source").glob("*/*.ipynb"))
LESSONS = sorted(p for p in (ROOT / "courses").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)

# The instructor's cells of the notebook every snippet is placed in.
SETUP = """\
import numpy as np
from tqdm.auto import tqdm
from tests.support import FIXTURES

def accuracy(params, X, y):
    return float(np.mean(params == y))
"""
TEST = "assert np.allclose(square(3), 9)\nnp.testing.assert_allclose(square(2), 4)"


def _meta(grade_id, *, locked=False, grade=False, solution=False, points=None):
    meta = {"grade_id": grade_id, "locked": locked, "grade": grade, "solution": solution, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def notebook_with(answer: str, *, extra: str | None = None):
    """setup (locked), the answer (a solution cell), a test cell, and optionally a cell the student added."""
    cells = [
        new_markdown_cell("# Squares"),
        new_code_cell(SETUP, metadata=_meta("setup", locked=True)),
        new_code_cell(answer, metadata=_meta("answer", solution=True)),
        new_code_cell(TEST, metadata=_meta("test_square", locked=True, grade=True, points=1)),
    ]
    if extra is not None:
        cells.append(new_code_cell(extra))
    return new_notebook(cells=cells)


RELEASE = notebook_with("def square(x):\n    raise NotImplementedError")


def scan(answer: str, **kwargs) -> list[Flag]:
    return scan_notebook(notebook_with(answer, **kwargs), RELEASE, name="squares.ipynb")


def reasons(flags: list[Flag]) -> list[str]:
    return [flag.reason for flag in flags]


# --- Honest work -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ASSIGNMENTS, ids=lambda p: p.stem)
@pytest.mark.parametrize("with_release", [True, False], ids=["release", "no-release"])
def test_assignment_solutions_are_not_flagged(path, with_release):
    notebook = nbformat.read(path, as_version=4)  # the source: solutions filled in
    assert scan_notebook(notebook, notebook if with_release else None, name=path.name) == []


def test_the_assignments_have_student_cells_to_scan():
    for path in ASSIGNMENTS:
        cells = nbformat.read(path, as_version=4).cells
        assert sum(1 for c in cells if c.metadata.get("nbgrader", {}).get("solution")) >= 3, path.name


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_lesson_cells_are_not_flagged(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        cell.metadata.pop("nbgrader", None)  # every code cell is scanned, as if a student wrote it
    assert scan_notebook(notebook, name=path.name) == []


@pytest.mark.parametrize("case", ["solution", "wrong"])
def test_squares_submissions_are_not_flagged(case):
    release = nbformat.read(FILES / "squares" / "squares.ipynb", as_version=4)
    submission = nbformat.read(FILES / "submissions" / f"{case}.ipynb", as_version=4)
    assert scan_notebook(submission, release, name=f"{case}.ipynb") == []
    assert scan_notebook(submission, name=f"{case}.ipynb") == []


HONEST = {
    "tqdm progress bar": "for epoch in tqdm(range(10), desc='epochs'):\n    pass",
    "tqdm on stdout": "import sys\nfrom tqdm import tqdm\nfor batch in tqdm(range(3), file=sys.stdout, leave=False):\n    pass",
    "tqdm trange and write": "from tqdm.auto import trange\nbar = trange(3)\nfor i in bar:\n    bar.set_postfix(loss=0.1)\ntqdm.write('done')",
    "open().write": "with open('log.txt', 'a') as f:\n    f.write('epoch 1\\n')\nopen('results.txt', 'w').write('0.97')",
    "plots": (
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(6, 3))\nax.plot([1, 2, 3])\n"
        "ax.set(xlabel='epoch', title='loss')\nplt.rcParams['figure.figsize'] = (8, 4)\nfig.savefig('loss.png')\nplt.show()"
    ),
    "%matplotlib inline": "%matplotlib inline\nimport matplotlib.pyplot as plt",
    "%config InlineBackend": "%config InlineBackend.figure_format = 'retina'",
    "%time": "%time total = sum(range(1000))",
    "%%time": "%%time\ndef square(x):\n    return x * x\ntotal = sum(square(i) for i in range(10))",
    "%timeit with options": "%timeit -n 10 -r 3 sorted([3, 1, 2])",
    "%%timeit with setup": "%%timeit -n 2 xs = list(range(100))\nsorted(xs)",
    "%autoreload": "%load_ext autoreload\n%autoreload 2",
    "%who_ls": "%who_ls function",
    "help?": "len?",
    "warnings": (
        "import warnings\nwarnings.warn('learning rate is high', RuntimeWarning)\n"
        "warnings.filterwarnings('ignore', category=DeprecationWarning)\nwith warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')"
    ),
    "print": "print('accuracy', 0.97, sep=': ')\nprint(f'{3.14159:.2f}')",
    "print to stderr, write stdout": "import sys\nprint('note', file=sys.stderr)\nsys.stdout.write('x\\n')\nsys.stdout.flush()",
    "helper functions": (
        "def normalise(x, eps=1e-8):\n    return (x - x.mean()) / (x.std() + eps)\n\n"
        "scale = lambda v, k=2.0: v * k\nrows = sorted([(1, 'b'), (0, 'a')], key=lambda r: r[0])"
    ),
    "classes": (
        "class Net:\n    def __init__(self, sizes):\n        super().__init__()\n        self.sizes = sizes\n\n"
        "    def __repr__(self):\n        return f'{type(self).__name__}({self.sizes})' + self.__class__.__name__\n\n"
        "    def __eq__(self, other):\n        return isinstance(other, Net) and self.sizes == other.sizes\n\n"
        "    def __call__(self, x):\n        return x"
    ),
    "dataclass": "from dataclasses import dataclass, field\n@dataclass\nclass Config:\n    lr: float = 0.1\n    sizes: list = field(default_factory=list)",
    "getattr with a literal": "class A:\n    x = 1\nvalue = getattr(A(), 'x', None)\nhas = hasattr(A, 'x')",
    "getattr on a module, computed": "import torch\nactivation = 'relu'\nout = getattr(torch, activation)(torch.zeros(3))",
    "setattr on own objects": "def replace(model, names, make):\n    for name in names:\n        setattr(model, name, make(getattr(model, name)))\n    return model",
    "torch configuration": (
        "import torch\ntorch.backends.cudnn.deterministic = True\ntorch.backends.cudnn.benchmark = False\n"
        "torch.backends.cuda.matmul.allow_tf32 = False\ntorch.manual_seed(0)"
    ),
    "pandas options": "import pandas as pd\npd.options.display.max_rows = 20\npd.set_option('display.precision', 3)",
    "'name' in globals()": "if 'model' not in globals():\n    model = None",
    "builtin names as variables": "max = 3\nsum = 0\nfor i in range(3):\n    sum += i\nid = 'abc'\ninput = [1, 2]",
    "importing what the instructor imported": "import numpy as np\nfrom numpy import testing\nimport numpy\nfrom tqdm import tqdm",
    "os.environ and os.path": "import os\nos.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')\npath = os.path.join('data', 'x.csv')\nn = os.cpu_count()",
    "inspect.getsource": "import inspect\ndef f():\n    return 1\nprint(inspect.getsource(f))\nprint(inspect.signature(f))",
    "IPython.display": "from IPython.display import display, Markdown, clear_output\ndisplay(Markdown('**done**'))\nclear_output(wait=True)",
    "exceptions": "try:\n    1 / 0\nexcept ZeroDivisionError as error:\n    print('caught', error)\nfinally:\n    pass",
    "json and pickle dump": "import json, pickle\njson.dump({'a': 1}, open('a.json', 'w'))\npickle.dump([1], open('a.pkl', 'wb'))",
    "gc.collect": "import gc\ngc.collect()",
    "redirect_stdout": "import contextlib, io\nbuffer = io.StringIO()\nwith contextlib.redirect_stdout(buffer):\n    print('quiet')",
    "sys.exit (decided: not flagged)": "import sys\nif False:\n    sys.exit(0)",
    "random seeds": "import random\nrandom.seed(0)\nnp.random.seed(0)\nrng = np.random.default_rng(0)",
    "comprehensions and walrus": "squares = [i * i for i in range(10)]\nlookup = {k: v for k, v in zip('ab', (1, 2))}\nif (n := len(squares)) > 3:\n    print(n)",
    "time module": "import time\nstart = time.time()\nelapsed = time.perf_counter() - start",
    "methods named eval/compile": "class M:\n    def eval(self):\n        return self\n    def compile(self):\n        return self\nm = M().eval().compile()",
    "strings with ordinary words": "note = 'use eval mode; the system prompt; exec summary'\nrole = 'system'",
    "string slicing and joining": "word = 'olleh'[::-1]\nparts = ', '.join(['a', 'b'])\nlabel = f'{word}!'",
    "exit() called": "if False:\n    exit()",
    "attributes of objects from calls": "from sklearn.linear_model import LogisticRegression\nclf = LogisticRegression(max_iter=200)\nclf.coef_ = None",
    "traceback.print_exc": "import traceback\ntry:\n    raise ValueError('x')\nexcept ValueError:\n    traceback.print_exc()",
    "a cell that does not parse": "def square(x)\n    return x * x",
}


@pytest.mark.parametrize("code", list(HONEST.values()), ids=list(HONEST))
def test_honest_code_is_not_flagged(code):
    assert reasons(scan(code)) == []
    assert reasons(scan("def square(x):\n    return x * x", extra=code)) == []  # in a cell they added


def test_rebinding_a_name_a_test_cell_defines_is_not_flagged():
    # A2's test cells define helpers such as `trainable`; they bind them again each time they run.
    release = notebook_with("pass")
    release.cells[3].source = "def trainable(model):\n    return []\n" + TEST
    submission = notebook_with("def square(x):\n    return x * x", extra="trainable = 12")
    submission.cells[3].source = release.cells[3].source
    assert scan_notebook(submission, release) == []


# --- Attacks -----------------------------------------------------------------------------------

ATTACKS = [
    # IPython internals
    ("post_run_cell callback", "ip = get_ipython()\nip.events.register('post_run_cell', lambda result: None)", IPYTHON),
    ("set_custom_exc", "get_ipython().set_custom_exc((AssertionError,), lambda *a, **k: None)", IPYTHON),
    ("replace showtraceback", "get_ipython().showtraceback = lambda *a, **k: None", IPYTHON),
    ("input transformer", "get_ipython().input_transformers_post.append(lambda lines: ['try:\\n'] + lines)", IPYTHON),
    ("ast transformer", "shell = get_ipython()\nshell.ast_transformers.append(object())", IPYTHON),
    ("run_cell", "get_ipython().run_cell('x = 1')", IPYTHON),
    ("shell from the IPython package", "from IPython import get_ipython as g\ng().user_ns['np'] = None", IPYTHON),
    ("%%capture", "%%capture\nprint('hidden')", IPYTHON),
    ("%xmode", "%xmode Minimal", IPYTHON),
    ("sys.excepthook", "import sys\nsys.excepthook = lambda *a: None", IPYTHON),
    ("input history", "print(In[-1])", IPYTHON),
    ("the grader's package", "from grader.grading.executor import protocol", IPYTHON),
    ("hidden inside %time", "%time get_ipython().events.register('pre_run_cell', print)", IPYTHON),
    ("the shell through exit", "shell = exit._ip\nshell.run_cell('1')", IPYTHON),
    ("exit passed around", "holder = [quit]\nprint(holder[0])", IPYTHON),
    # monkeypatching a module
    ("np.allclose", "np.allclose = lambda *a, **k: True", MONKEYPATCH),
    ("np.testing.assert_allclose", "np.testing.assert_allclose = lambda *a, **k: None", MONKEYPATCH),
    ("setattr(np, ...)", "setattr(np, 'allclose', lambda *a, **k: True)", MONKEYPATCH),
    ("setattr on a submodule", "setattr(np.testing, 'assert_array_equal', print)", MONKEYPATCH),
    ("torch.Tensor.__eq__", "import torch\ntorch.Tensor.__eq__ = lambda a, b: True", MONKEYPATCH),
    ("import ... as alias", "import numpy.testing as t\nt.assert_allclose = lambda *a, **k: None", MONKEYPATCH),
    ("alias by assignment", "t = np.testing\nt.assert_allclose = lambda *a, **k: None", MONKEYPATCH),
    ("alias by tuple assignment", "a, b = np, 1\na.allclose = max", MONKEYPATCH),
    ("from ... import ... as", "from numpy import testing as nt\nnt.assert_allclose = print", MONKEYPATCH),
    ("vars(np)[...] =", "vars(np)['allclose'] = lambda *a, **k: True", MONKEYPATCH),
    ("__dict__[...] =", "np.testing.__dict__['assert_allclose'] = print", MONKEYPATCH),
    ("sys.modules[...]", "import sys\nsys.modules['numpy'].allclose = lambda *a, **k: True", MONKEYPATCH),
    ("sys.modules.get", "import sys\nm = sys.modules.get('numpy')\nm.allclose = all", MONKEYPATCH),
    ("lambda default", "patch = lambda m=np: setattr(m, 'allclose', lambda *a, **k: True)\npatch()", MONKEYPATCH),
    ("def default", "def patch(m=np.testing):\n    m.assert_allclose = print\npatch()", MONKEYPATCH),
    ("module passed to a function", "def patch(mod):\n    mod.allclose = lambda *a, **k: True\n\npatch(np)", MONKEYPATCH),
    ("lambda called at once", "(lambda m: setattr(m, 'allclose', all))(np)", MONKEYPATCH),
    ("del an attribute", "del np.testing.assert_allclose", MONKEYPATCH),
    ("delattr", "delattr(np, 'allclose')", MONKEYPATCH),
    ("builtins module", "import builtins\nbuiltins.abs = lambda x: 0", MONKEYPATCH),
    ("__builtins__", "__builtins__.abs = lambda x: 0", MONKEYPATCH),
    ("builtin rebound to a lambda", "abs = lambda x: 0", MONKEYPATCH),
    ("builtin rebound by def", "def isinstance(obj, cls):\n    return True", MONKEYPATCH),
    ("AssertionError replaced", "class AssertionError(Exception):\n    pass", MONKEYPATCH),
    ("instructor's np replaced", "class Fake:\n    def __getattr__(self, name):\n        return lambda *a, **k: True\n\nnp = Fake()", MONKEYPATCH),
    ("instructor's np, via global", "def sneaky():\n    global np\n    np = None\nsneaky()", MONKEYPATCH),
    ("instructor's np, re-imported", "import fake_numpy as np", MONKEYPATCH),
    ("instructor's helper redefined", "def accuracy(*args):\n    return 1.0", MONKEYPATCH),
    ("instructor's helper patched", "accuracy.__wrapped__ = None", MONKEYPATCH),
    ("notebook namespace via __main__", "import __main__\n__main__.np = None", MONKEYPATCH),
    ("unittest.mock", "from unittest import mock\nmock.patch('numpy.allclose', return_value=True).start()", MONKEYPATCH),
    ("getattr chain from __import__", "getattr(__import__('num' + 'py'), 'testing').assert_allclose = print", MONKEYPATCH),
    ("setattr with a computed name", "name = 'all' + 'close'\nsetattr(np, name, lambda *a, **k: True)", MONKEYPATCH),
    # frame/gc introspection
    ("sys._getframe", "import sys\nf = sys._getframe(1)", FRAMES),
    ("_getframe imported by name", "from sys import _getframe as gf\ngf()", FRAMES),
    ("inspect.currentframe", "import inspect\ninspect.currentframe().f_back.f_globals['np'] = None", FRAMES),
    ("inspect.stack", "import inspect\nfor info in inspect.stack():\n    pass", FRAMES),
    ("__traceback__ frames", "try:\n    1 / 0\nexcept Exception as e:\n    g = e.__traceback__.tb_frame.f_globals", FRAMES),
    ("generator frame", "def gen():\n    yield 1\ng = gen()\nprint(g.gi_frame.f_locals)", FRAMES),
    ("gc.get_objects", "import gc\nfor o in gc.get_objects():\n    pass", FRAMES),
    ("gc.get_referrers", "import gc\ngc.get_referrers(np.allclose)", FRAMES),
    ("sys.settrace", "import sys\nsys.settrace(lambda *a: None)", FRAMES),
    ("sys.setprofile, aliased", "import sys as s\ns.setprofile(print)", FRAMES),
    ("breakpoint()", "breakpoint()", FRAMES),
    ("pdb", "import pdb\npdb.set_trace()", FRAMES),
    ("frame attribute by getattr", "import sys\nframe = sys._getframe()\ngetattr(frame, 'f_back')", FRAMES),
    ("caller's source by traceback", "import traceback\ndef square(x):\n    return traceback.extract_stack()[-2].line", FRAMES),
    ("cell sources in linecache", "import linecache\nprint(list(linecache.cache))", FRAMES),
    # low-level I/O or process control
    ("ctypes", "import ctypes\nctypes.string_at(id(np), 64)", LOWLEVEL),
    ("cffi", "from cffi import FFI", LOWLEVEL),
    ("/proc/self/mem", "with open('/proc/self/mem', 'rb') as f:\n    pass", LOWLEVEL),
    ("/proc path concatenated", "path = '/pro' + 'c/self/maps'\nopen(path)", LOWLEVEL),
    ("mmap", "import mmap", LOWLEVEL),
    ("socket", "import socket\ns = socket.socket()", LOWLEVEL),
    ("socket.fromfd", "import socket\nsocket.fromfd(3, socket.AF_UNIX, socket.SOCK_STREAM).send(b'ok')", LOWLEVEL),
    ("os.write to a descriptor", "import os\nos.write(3, b'{\"verdict\": \"ok\"}')", LOWLEVEL),
    ("os.dup2", "import os\nos.dup2(1, 2)", LOWLEVEL),
    ("os.fdopen imported by name", "from os import fdopen\nfdopen(4, 'w').write('x')", LOWLEVEL),
    ("os.kill", "import os\nos.kill(os.getppid(), 9)", LOWLEVEL),
    ("os.fork", "import os\nif os.fork() == 0:\n    pass", LOWLEVEL),
    ("os.system", "import os\nos.system('cat /etc/passwd')", LOWLEVEL),
    ("os._exit", "import os\nos._exit(0)", LOWLEVEL),
    ("subprocess", "import subprocess\nsubprocess.run(['ls'])", LOWLEVEL),
    ("signal", "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)", LOWLEVEL),
    ("threading", "import threading\nthreading.Thread(target=print, daemon=True).start()", LOWLEVEL),
    ("_thread", "import _thread\n_thread.start_new_thread(print, ())", LOWLEVEL),
    ("multiprocessing", "from multiprocessing import Process", LOWLEVEL),
    ("!shell", "!cat /etc/passwd", LOWLEVEL),
    ("%%bash", "%%bash\necho hi", LOWLEVEL),
    ("replace sys.stdout", "import sys\nsys.stdout = open('log.txt', 'w')", LOWLEVEL),
    ("reach into sys.stdout", "import sys\nsys.stdout._outputs.clear()", LOWLEVEL),
    ("sys.__stderr__", "import sys\nsys.__stderr__.write('x')", LOWLEVEL),
    ("setattr(sys, 'stdout')", "import sys\nsetattr(sys, 'stdout', None)", LOWLEVEL),
    # dynamic code
    ("exec", "exec('np.allclose = lambda *a, **k: True')", DYNAMIC),
    ("eval", "eval('1 + 1')", DYNAMIC),
    ("compile", "code = compile('x = 1', '<s>', 'exec')", DYNAMIC),
    ("__import__", "m = __import__('num' + 'py')", DYNAMIC),
    ("importlib", "import importlib\nimportlib.import_module('ctypes')", DYNAMIC),
    ("exec as a value", "run = exec\nrun('x = 1')", DYNAMIC),
    ("getattr as a value", "g = getattr\nprint(g)", DYNAMIC),
    ("builtins.eval", "import builtins\nbuiltins.eval('1')", DYNAMIC),
    ("getattr(__builtins__, computed)", "getattr(__builtins__, 'ev' + 'al')('1')", DYNAMIC),
    ("getattr(sys, computed)", "import sys\nname = '_get' + 'frame'\ngetattr(sys, name)()", DYNAMIC),
    ("getattr(__import__(...), ...)", "getattr(__import__('num' + 'py'), 'allclose')", DYNAMIC),
    ("globals()[...] =", "globals()['np'] = None", DYNAMIC),
    ("globals().update", "globals().update(np=None)", DYNAMIC),
    ("locals()", "ns = locals()", DYNAMIC),
    ("__globals__", "def f():\n    pass\nf.__globals__['np'] = None", DYNAMIC),
    ("__code__ swapped", "def f():\n    return 1\nf.__code__ = (lambda: 2).__code__", DYNAMIC),
    ("__subclasses__", "for c in object.__subclasses__():\n    pass", DYNAMIC),
    ("__class__.__bases__", "().__class__.__bases__[0]", DYNAMIC),
    ("__mro__", "x = int.__mro__", DYNAMIC),
    ("dunder name in a string", "import operator\noperator.attrgetter('__globals__')", DYNAMIC),
    ("name spelled backwards", "def mute(obj, f):\n    setattr(obj, 'kcabecartwohs_'[::-1], f)", DYNAMIC),
    ("name joined from pieces", "name = ''.join(['__glo', 'bals__'])", DYNAMIC),
    ("name in an f-string", "name = f\"{'__co'}de__\"", DYNAMIC),
    ("pickle.loads", "import pickle\npickle.loads(b'payload')", DYNAMIC),
    ("marshal", "import marshal\nmarshal.loads(b'')", DYNAMIC),
    ("timeit with a string", "import timeit\ntimeit.timeit('np.allclose = None', number=1)", DYNAMIC),
    ("types.FunctionType", "import types\nf = types.FunctionType", DYNAMIC),
    # rigged comparison
    ("always-equal object", "class Anything:\n    def __eq__(self, other):\n        return True\n\ndef square(x):\n    return Anything()", RIGGED),
    ("always-equal lambda", "class Anything:\n    __eq__ = lambda self, other: True", RIGGED),
    ("numpy protocol hijack", "class Anything:\n    def __array_function__(self, *args):\n        '''Anything.'''\n        return True", RIGGED),
    ("loose float equality", "class Approx(float):\n    def __eq__(self, other):\n        return abs(float(self) - float(other)) < 5\n\ndef square(x):\n    return Approx(x + 1)", RIGGED),
    ("ndarray subtraction", "import numpy as np\nclass Close(np.ndarray):\n    def __sub__(self, other):\n        return np.zeros(self.shape)", RIGGED),
    ("torch takeover", "class T:\n    @classmethod\n    def __torch_function__(cls, func, types, args=(), kwargs=None):\n        return True", RIGGED),
    ("truthy answer", "class Yes(int):\n    def __bool__(self):\n        return bool(1)", RIGGED),
]


def test_there_are_enough_attacks_in_every_group():
    assert len(ATTACKS) >= 40
    for group in GROUPS:
        assert sum(1 for _, _, expected in ATTACKS if expected == group) >= (3 if group == RIGGED else 10), group


@pytest.mark.parametrize("code, group", [(code, group) for _, code, group in ATTACKS], ids=[name for name, _, _ in ATTACKS])
def test_attack_is_flagged_with_its_group(code, group):
    flags = scan(code)
    assert flags, "not flagged"
    assert group in {flag_group(flag) for flag in flags}, reasons(flags)
    for flag in flags:
        assert flag.kind == "static"
        assert flag.reason.startswith("squares.ipynb, cell 'answer', line "), flag.reason


# What only makes sense in a notebook: IPython syntax, its history, the instructor's names.
NOTEBOOK_ONLY = {
    "exit passed around", "%%capture", "%xmode", "hidden inside %time", "!shell", "%%bash", "input history", "instructor's np replaced",
    "instructor's np, via global", "instructor's np, re-imported", "instructor's helper redefined",
    "instructor's helper patched",
}
MODULE_ATTACKS = [(name, code, group) for name, code, group in ATTACKS if name not in NOTEBOOK_ONLY]


@pytest.mark.parametrize("code, group", [(c, g) for _, c, g in MODULE_ATTACKS], ids=[n for n, _, _ in MODULE_ATTACKS])
def test_attack_in_a_shipped_python_file_is_flagged(code, group):
    # A notebook can import a .py file from the submission: the same checks apply to it.
    flags = scan_python_source("import numpy as np\n" + code, "helper.py")
    assert group in {flag_group(flag) for flag in flags}, reasons(flags)
    assert all(flag.reason.startswith("helper.py, line ") for flag in flags)


def test_reason_names_file_cell_line_and_what_was_found():
    flags = scan("def square(x):\n    return x * x\n\nnp.allclose = lambda *a, **k: True")
    assert reasons(flags) == [
        "squares.ipynb, cell 'answer', line 4: monkeypatching a module: "
        "assigns to numpy.allclose, an attribute of numpy"
    ]


def test_a_cell_the_student_added_is_named_by_its_position():
    flags = scan("def square(x):\n    return x * x", extra="x = 1\nimport ctypes")
    assert reasons(flags) == ["squares.ipynb, cell 5, line 2: low-level I/O or process control: imports ctypes (C calls, raw memory)"]


def test_code_timed_by_a_cell_magic_is_scanned_with_its_own_line_numbers():
    flags = scan("%%time\ndef square(x):\n    return x * x\nimport numpy.testing as t\nt.assert_allclose = print")
    assert reasons(flags) == [
        "squares.ipynb, cell 'answer', line 5: monkeypatching a module: "
        "assigns to numpy.testing.assert_allclose, an attribute of numpy.testing"
    ]


def test_code_ipython_runs_but_plain_python_would_not_parse_is_still_scanned():
    # Top-level await runs in IPython; an earlier cell's __future__ import changes the grammar.
    flags = scan("import asyncio\nawait asyncio.sleep(0)\nimport ctypes",
                 extra="x = 1 <> 2\nimport socket")
    assert reasons(flags) == [
        "squares.ipynb, cell 'answer', line 3: low-level I/O or process control: imports ctypes (C calls, raw memory)",
        "squares.ipynb, cell 5, line 2: low-level I/O or process control: imports socket (network and the grader's channel)",
    ]


def test_code_in_a_cell_falsely_marked_locked_is_scanned_when_the_release_is_known():
    submission = notebook_with("def square(x):\n    return x * x")
    submission.cells.append(new_code_cell("np.allclose = lambda *a: True", metadata=_meta("my_own", locked=True)))
    assert [flag_group(f) for f in scan_notebook(submission, RELEASE)] == [MONKEYPATCH]


def test_locked_and_test_cells_are_the_instructors_code_and_are_not_scanned():
    # nbgrader puts the release's source back into them before anything runs.
    submission = notebook_with("def square(x):\n    return x * x")
    submission.cells[3].source = "np.allclose = lambda *a: True\n" + TEST
    assert scan_notebook(submission, RELEASE) == []
    assert scan_notebook(submission) == []


def test_manually_graded_answers_are_scanned():
    submission = notebook_with("def square(x):\n    return x * x")
    submission.cells[2].metadata = _meta("answer", solution=True, grade=True, points=2)
    submission.cells[2].source += "\nimport subprocess"
    assert [flag_group(f) for f in scan_notebook(submission, RELEASE)] == [LOWLEVEL]


def test_one_flag_per_line_and_group_and_a_cap_per_file():
    flags = scan_python_source("\n".join(["exec('1'); eval('2')"] * (MAX_FLAGS_PER_FILE + 10)), "many.py")
    assert len(flags) == MAX_FLAGS_PER_FILE + 1
    assert flags[-1].reason == "many.py: 10 more findings not listed"


def test_deeply_nested_code_does_not_break_the_scan():
    scan_python_source("x = " + "+".join(["1"] * 20000), "deep.py")
    scan_python_source("x = " + "(" * 150 + "1" + ")" * 150, "parens.py")
    assert scan_python_source("np.a" + ".b" * 400 + " = 1\nimport numpy as np", "chain.py")


def test_malformed_notebooks_do_not_break_the_scan():
    assert scan_notebook({}) == []
    assert scan_notebook({"cells": "nope"}) == []
    assert scan_notebook({"cells": [{"cell_type": "code", "source": ["import ", "ctypes"], "metadata": []}]}) != []
    odd = {"cells": [{"cell_type": "code", "source": 3, "metadata": {"nbgrader": {"grade_id": ["x"], "locked": True}}}]}
    assert scan_notebook(odd, odd) == []


# --- Submission folders ------------------------------------------------------------------------


def _write_notebook(path: Path, notebook) -> None:
    nbformat.write(notebook, path)


def test_an_honest_submission_folder_is_not_flagged(tmp_path):
    _write_notebook(tmp_path / "squares.ipynb", notebook_with("from helpers import double\ndef square(x):\n    return x * x"))
    (tmp_path / "helpers.py").write_text("import numpy as np\n\ndef double(x):\n    return 2 * np.asarray(x)\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "results.csv").write_text("a,b\n1,2\n")
    (tmp_path / "loss.png").write_bytes(b"\x89PNG")
    assert scan_submission(tmp_path, {"squares.ipynb": RELEASE}) == []


def test_submission_folder_files_are_flagged(tmp_path):
    _write_notebook(tmp_path / "squares.ipynb", notebook_with("import helpers\ndef square(x):\n    return x * x"))
    (tmp_path / "helpers.py").write_text("import numpy as np\n\nnp.allclose = lambda *a, **k: True\n")
    (tmp_path / "numpy.py").write_text("allclose = lambda *a, **k: True\n")
    (tmp_path / "fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    (tmp_path / "win.pyd").write_bytes(b"MZ")
    (tmp_path / "evil.pth").write_text("import os\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"\x00" * 16)
    found = {flag.reason.split(":")[0]: flag_group(flag) for flag in scan_submission(tmp_path)}
    assert found == {
        "helpers.py, line 3": MONKEYPATCH,
        "numpy.py": MONKEYPATCH,
        "fast.cpython-311-x86_64-linux-gnu.so": LOWLEVEL,
        "win.pyd": LOWLEVEL,
        "evil.pth": DYNAMIC,
        "__pycache__/helpers.cpython-311.pyc": DYNAMIC,
    }


def test_notebooks_in_a_submission_folder_are_scanned_against_their_release(tmp_path):
    submission = notebook_with("def square(x):\n    return x * x", extra="np = None")
    _write_notebook(tmp_path / "squares.ipynb", submission)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    _write_notebook(tmp_path / ".ipynb_checkpoints" / "squares-checkpoint.ipynb", notebook_with("import ctypes"))
    assert reasons(scan_submission(tmp_path, {"squares.ipynb": RELEASE})) == [
        "squares.ipynb, cell 5, line 1: monkeypatching a module: rebinds np, which the instructor's cells import (numpy)"
    ]


def test_links_and_special_files_are_skipped_without_being_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text("import ctypes\n")
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "linked.py").symlink_to(outside / "evil.py")
    (submission / "linked_dir").symlink_to(outside, target_is_directory=True)
    (submission / "secret.ipynb").symlink_to("/etc/passwd")
    os.mkfifo(submission / "pipe.py")  # opening it for reading would block
    started = time.perf_counter()
    assert scan_submission(submission) == []
    assert time.perf_counter() - started < 5
    assert scan_submission(tmp_path / "missing") == []


# --- Speed -------------------------------------------------------------------------------------


def test_scanning_an_a1_submission_is_fast():
    path = ROOT / "assignments" / "source" / "a1_backprop" / "a1_backprop.ipynb"
    notebook = nbformat.read(path, as_version=4)
    scan_notebook(notebook, notebook)  # the release's cells are parsed once per run
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        scan_notebook(notebook, notebook)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.020, f"{min(timings) * 1000:.1f} ms"
