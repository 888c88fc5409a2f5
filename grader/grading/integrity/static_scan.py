"""Static scan of a submission for the known ways of forging a verdict, before anything runs.

The scan reads the code a student wrote (solution cells, cells they added, and every ``.py`` file
they ship, which a notebook can import) as Python syntax trees, never as text: IPython syntax is
first turned into the Python IPython would run (``%time x`` becomes
``get_ipython().run_line_magic('time', 'x')``), so magics and ``!shell`` lines are seen as the
calls they are. Locked and test cells are not scanned: nbgrader restores them from the release,
so they hold the instructor's code. A cell that does not parse is not a flag (it simply fails).

Every finding is a ``Flag("static", reason)``; the reason names the file, the cell (its grade id,
or ``cell N`` counting every cell of the notebook from 1) and the line, then the group and what
was found, in plain words. One flag per line and group.

The scan is one layer of defence in depth (docs/grading-security.md): it finds the tricks that
are written down plainly or lightly disguised, and it cannot see code assembled at run time
(that is why building code at run time is itself flagged). The groups:

IPython internals
    Anything that reaches the shell or the interpreter's hooks: ``get_ipython()`` beyond the
    allow-listed magics below (``events.register``, input and AST transformers,
    ``set_custom_exc``, ``showtraceback``, ``run_cell``, ``displayhook``, ``user_ns``...), the
    ``IPython`` package other than ``IPython.display``, ``ipykernel``/``jupyter_client`` and the
    grader's own packages (``grader``, ``nbgrader``), ``sys.excepthook``/``displayhook``/
    ``breakpointhook``/``unraisablehook``/``addaudithook``, and IPython's input history (``In``,
    ``_ih``, ``_i3``...: the source of earlier cells, tests included). Magics outside the
    allow-list are flagged here too (``%%capture`` hides a cell's stderr, ``%xmode`` changes the
    traceback display, ``%run``/``%load``/``%%writefile`` bring in code the scan does not see).

    Allow-listed magics (harmless, and common in honest work): ``%matplotlib``, ``%time``,
    ``%timeit``, ``%%time``, ``%%timeit`` (the code they time is scanned like any other),
    ``%load_ext autoreload``, ``%autoreload``, ``%config InlineBackend.*``, ``%who``/``%who_ls``/
    ``%whos`` (they list the notebook's names), and ``obj?`` help.

monkeypatching a module
    Assigning to or deleting an attribute of an imported module or of anything reached through
    one (``np.allclose = ...``, ``np.testing.assert_allclose = ...``, ``setattr(np, ...)``,
    ``torch.Tensor.__eq__ = ...``, ``builtins.print = ...``, ``__main__.np = ...``), also through
    aliases (``import numpy.testing as t``, ``t = np.testing``, ``lambda m=np: ...``, a module
    passed to a function, ``sys.modules["numpy"]``, ``__import__("numpy")``), and
    ``setattr``/``delattr`` with a computed name on a module; writing to ``vars(module)`` or
    ``module.__dict__``; the module table and import machinery (``sys.modules``,
    ``sys.meta_path``...); ``unittest.mock``; ``__builtins__``; rebinding, at notebook level, a
    builtin to other code (``abs = lambda x: 0``, ``def isinstance(...)``), or a name the
    instructor's setup and helper cells (locked, not graded) import or define (``np = ...`` after
    their ``import numpy as np``; test cells bind their own names again each time they run, so
    theirs are not watched); assigning to an attribute of a function or class the instructor's
    cells define; shipping a ``.py`` file that shadows an installed or standard module.
    Configuration attributes are not flagged: ``torch.backends.*``, ``pandas.options.*`` and
    ``tqdm``'s ``monitor_interval``.

frame/gc introspection
    Reaching other code's frames or objects: ``sys._getframe``, ``sys._current_frames``,
    ``inspect.currentframe``/``stack``/``trace``/``getouterframes``/``getinnerframes``...,
    the frame attributes (``f_back``, ``f_locals``, ``f_globals``, ``f_builtins``, ``f_code``,
    ``f_trace``, ``tb_frame``, ``tb_next``, ``gi_frame``, ``cr_frame``, ``ag_frame``),
    ``__traceback__``, ``sys.last_traceback``, ``traceback.walk_stack``/``walk_tb``,
    ``gc.get_objects``/``get_referrers``/``get_referents``, trace and profile hooks
    (``sys.settrace``, ``sys.setprofile``, ``sys.monitoring``, ``cProfile``, ``trace``), and
    debuggers (``breakpoint()``, ``pdb``, ``bdb``).

low-level I/O or process control
    Talking to the grader or the machine below Python's normal file API: ``ctypes``, ``cffi``,
    ``mmap``, ``socket``, ``zmq``, ``os`` file-descriptor and process calls (``os.read``/
    ``write``/``close``/``dup``/``dup2``/``fdopen``/``fstat``/``lseek``/``open``/``pipe``,
    ``os.kill``/``killpg``/``fork``/``forkpty``/``_exit``/``exec*``/``spawn*``/``system``/
    ``popen``/``wait*``...), ``subprocess``, ``pty``, ``fcntl``, ``signal``, ``multiprocessing``,
    ``concurrent.futures``, ``threading``/``_thread`` (a thread can outlive its cell and run
    during the tests), ``atexit``, shell commands (``!cmd``, ``%%bash``, ``%pip``...), replacing
    or reaching into ``sys.stdout``/``sys.stderr`` (only ``write``, ``writelines``, ``flush``,
    ``isatty``, ``encoding`` and passing them as ``file=`` are fine), ``sys.__stdout__``, and
    ``/proc/`` paths in strings. Shipped compiled extension modules (``.so``, ``.pyd``).

dynamic code
    Code or names assembled at run time, which would hide any of the above: ``exec``, ``eval``,
    ``compile``, ``__import__``, ``importlib``, ``runpy``, ``code``, ``marshal``,
    ``types.FunctionType``/``CodeType``, unpickling (``pickle``/``dill``/``cloudpickle``
    ``load``/``loads``/``Unpickler``), ``timeit`` given code as a string; ``getattr`` with a
    computed name on ``sys``, ``os``, ``builtins``, ``gc``, ``inspect`` and the like (on other
    modules it is honest: ``getattr(torch, activation)``); any of those builtins used as a value
    rather than called; ``globals()``, ``locals()``, ``vars()`` used other than in
    ``'name' in globals()``; the dunder attributes that open objects up (``__dict__``,
    ``__globals__``, ``__code__``, ``__closure__``, ``__subclasses__``, ``__class__``,
    ``__bases__``, ``__mro__``, ``__getattribute__``, ``__setattr__``...), also as strings;
    shipped ``.pyc`` and ``.pth`` files (code the scan cannot read, or that runs at start-up).

rigged comparison
    A class whose ``__eq__``/``__ne__``/``__lt__``.../``__bool__`` returns a constant
    ``True``/``False`` (an answer built from it compares equal to anything); any class taking
    over NumPy's or torch's operations (``__array_function__``, ``__array_ufunc__``,
    ``__torch_function__``); and a subclass of a value type (``float``, ``int``, ``list``,
    ``ndarray``, ``Tensor``...) with its own comparison, truth value or the arithmetic a
    tolerance check goes through (``__sub__``, ``__abs__``, ``__float__``...): an answer of that
    type decides its own test.

Decisions: ``sys.exit()`` is not flagged (it raises ``SystemExit``, which ends the submission
and forges nothing; ``os._exit`` is flagged). ``open(...)``, ``os.environ``, ``os.path``,
``warnings``, ``print(file=sys.stderr)``, ``getattr(obj, "literal")``, ``setattr(obj, name, v)``
on the student's own objects, and ``contextlib.redirect_stdout`` are not flagged.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import functools
import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

from grader.flags import Flag
from grader.grading.parsing import AST_LOCK

IPYTHON = "IPython internals"
MONKEYPATCH = "monkeypatching a module"
FRAMES = "frame/gc introspection"
LOWLEVEL = "low-level I/O or process control"
DYNAMIC = "dynamic code"
RIGGED = "rigged comparison"
GROUPS = (IPYTHON, MONKEYPATCH, FRAMES, LOWLEVEL, DYNAMIC, RIGGED)

MAX_FLAGS_PER_FILE = 25

# How a function or class the instructor's cells define is written among dotted names.
_INSTRUCTOR = "<instructor>."
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
MAX_SOURCE_BYTES = 8 * 1024 * 1024

# --- What is allowed -------------------------------------------------------------------------

_LINE_MAGICS_ANY_ARG = {"matplotlib", "autoreload", "pinfo", "pinfo2", "who", "who_ls", "whos"}
_CODE_MAGICS = {"time", "timeit"}  # line or cell magics whose argument is code: scanned
_SHELL_MAGICS = {"system", "sx", "bash", "sh", "script", "pip", "conda", "mamba", "micromamba", "perl", "ruby"}

# Attribute stores on these are configuration, not forgery.
_CONFIG_PREFIXES = ("torch.backends.", "pandas.options.")

# Modules (and their submodules) that are fine even though their parent is flagged.
_ALLOWED_MODULES = ("IPython.display", "IPython.core.display", "IPython.lib.display")

_STREAM_ATTRIBUTES = {"write", "writelines", "flush", "isatty", "encoding", "errors"}

# --- What is flagged ---------------------------------------------------------------------------

# Dotted names (modules, or attributes of modules), matched as prefixes: "ctypes" covers
# "ctypes.CDLL". Each maps to (group, what it is, in words).
_OS_LOW_LEVEL = (
    "read write pread pwrite readv writev close closerange dup dup2 fdopen fstat fchmod fchown "
    "ftruncate lseek open openpty pipe pipe2 sendfile splice copy_file_range memfd_create "
    "set_inheritable set_blocking kill killpg fork forkpty _exit abort system popen "
    "execl execle execlp execlpe execv execve execvp execvpe spawnl spawnle spawnlp spawnlpe "
    "spawnv spawnve spawnvp spawnvpe posix_spawn posix_spawnp wait wait3 wait4 waitid waitpid "
    "setsid setpgid setpgrp pidfd_open"
).split()

_DENIED: dict[str, tuple[str, str]] = {
    # IPython internals and the grader's machinery
    "IPython": (IPYTHON, "the IPython package (the shell running the tests)"),
    "ipykernel": (IPYTHON, "ipykernel (the kernel's internals)"),
    "jupyter_client": (IPYTHON, "jupyter_client (the kernel protocol)"),
    "grader": (IPYTHON, "the grader's own package"),
    "nbgrader": (IPYTHON, "nbgrader's own package"),
    "sys.excepthook": (IPYTHON, "the interpreter's exception hook"),
    "sys.__excepthook__": (IPYTHON, "the interpreter's exception hook"),
    "sys.displayhook": (IPYTHON, "the interpreter's display hook"),
    "sys.__displayhook__": (IPYTHON, "the interpreter's display hook"),
    "sys.breakpointhook": (IPYTHON, "the interpreter's breakpoint hook"),
    "sys.unraisablehook": (IPYTHON, "the interpreter's unraisable-exception hook"),
    "sys.addaudithook": (IPYTHON, "an audit hook (it sees every audited event of the tests)"),
    # monkeypatching
    "sys.modules": (MONKEYPATCH, "the table of imported modules"),
    "sys.meta_path": (MONKEYPATCH, "the import machinery"),
    "sys.path_hooks": (MONKEYPATCH, "the import machinery"),
    "sys.path_importer_cache": (MONKEYPATCH, "the import machinery"),
    "unittest.mock": (MONKEYPATCH, "unittest.mock (patches objects)"),
    "mock": (MONKEYPATCH, "mock (patches objects)"),
    "forbiddenfruit": (MONKEYPATCH, "forbiddenfruit (patches builtins)"),
    # frames and gc
    "sys._getframe": (FRAMES, "sys._getframe (other code's frames)"),
    "sys._current_frames": (FRAMES, "sys._current_frames (every thread's frame)"),
    "sys._current_exceptions": (FRAMES, "sys._current_exceptions (other code's frames)"),
    "sys.settrace": (FRAMES, "a trace hook (sys.settrace)"),
    "sys.gettrace": (FRAMES, "the trace hook (sys.gettrace)"),
    "sys.setprofile": (FRAMES, "a profile hook (sys.setprofile)"),
    "sys.getprofile": (FRAMES, "the profile hook (sys.getprofile)"),
    "sys.monitoring": (FRAMES, "sys.monitoring (execution hooks)"),
    "sys.call_tracing": (FRAMES, "sys.call_tracing"),
    "sys.last_traceback": (FRAMES, "the last traceback (its frames)"),
    "sys.last_exc": (FRAMES, "the last exception (its frames)"),
    "sys.last_value": (FRAMES, "the last exception (its frames)"),
    "threading.settrace": (FRAMES, "a trace hook for threads"),
    "threading.setprofile": (FRAMES, "a profile hook for threads"),
    "gc.get_objects": (FRAMES, "gc.get_objects (every live object)"),
    "gc.get_referrers": (FRAMES, "gc.get_referrers (objects holding a reference)"),
    "gc.get_referents": (FRAMES, "gc.get_referents"),
    "traceback.walk_stack": (FRAMES, "traceback.walk_stack (the calling frames)"),
    "traceback.walk_tb": (FRAMES, "traceback.walk_tb (a traceback's frames)"),
    "traceback.extract_stack": (FRAMES, "traceback.extract_stack (the callers' frames and source)"),
    "traceback.format_stack": (FRAMES, "traceback.format_stack (the callers' frames and source)"),
    "traceback.print_stack": (FRAMES, "traceback.print_stack (the callers' frames and source)"),
    "traceback.StackSummary": (FRAMES, "traceback.StackSummary (frames and their source)"),
    "linecache": (FRAMES, "linecache (the source of every cell that ran, tests included)"),
    "pdb": (FRAMES, "the pdb debugger"),
    "bdb": (FRAMES, "the bdb debugger"),
    "trace": (FRAMES, "the trace module (a trace hook)"),
    "cProfile": (FRAMES, "cProfile (a profile hook)"),
    "profile": (FRAMES, "profile (a profile hook)"),
    "_lsprof": (FRAMES, "_lsprof (a profile hook)"),
    # low-level I/O and process control
    "ctypes": (LOWLEVEL, "ctypes (C calls, raw memory)"),
    "_ctypes": (LOWLEVEL, "_ctypes (C calls, raw memory)"),
    "cffi": (LOWLEVEL, "cffi (C calls, raw memory)"),
    "mmap": (LOWLEVEL, "mmap (maps memory or files such as /proc)"),
    "socket": (LOWLEVEL, "socket (network and the grader's channel)"),
    "_socket": (LOWLEVEL, "socket (network and the grader's channel)"),
    "zmq": (LOWLEVEL, "zmq (sockets)"),
    "subprocess": (LOWLEVEL, "subprocess (starts processes)"),
    "_posixsubprocess": (LOWLEVEL, "_posixsubprocess (starts processes)"),
    "pty": (LOWLEVEL, "pty (starts processes)"),
    "fcntl": (LOWLEVEL, "fcntl (file-descriptor control)"),
    "posix": (LOWLEVEL, "posix (raw system calls)"),
    "signal": (LOWLEVEL, "signal (signal handlers and signals)"),
    "_signal": (LOWLEVEL, "signal (signal handlers and signals)"),
    "multiprocessing": (LOWLEVEL, "multiprocessing (processes that can outlive the cell)"),
    "_multiprocessing": (LOWLEVEL, "multiprocessing (processes that can outlive the cell)"),
    "concurrent.futures": (LOWLEVEL, "concurrent.futures (threads or processes that can outlive the cell)"),
    "threading": (LOWLEVEL, "threading (a thread can outlive its cell and run during the tests)"),
    "_thread": (LOWLEVEL, "_thread (a thread can outlive its cell and run during the tests)"),
    "atexit": (LOWLEVEL, "atexit (code run when the process ends)"),
    "sys.__stdout__": (LOWLEVEL, "the process's real stdout (bypasses the recorded output)"),
    "sys.__stderr__": (LOWLEVEL, "the process's real stderr (bypasses the recorded output)"),
    "sys.__stdin__": (LOWLEVEL, "the process's real stdin"),
    **{f"os.{name}": (LOWLEVEL, f"os.{name} (file-descriptor or process call)") for name in _OS_LOW_LEVEL},
    # dynamic code
    "importlib": (DYNAMIC, "importlib (imports chosen at run time)"),
    "imp": (DYNAMIC, "imp (imports chosen at run time)"),
    "runpy": (DYNAMIC, "runpy (runs code)"),
    "code": (DYNAMIC, "the code module (runs code)"),
    "codeop": (DYNAMIC, "codeop (compiles code)"),
    "zipimport": (DYNAMIC, "zipimport (imports code)"),
    "marshal": (DYNAMIC, "marshal (code objects)"),
    "types.FunctionType": (DYNAMIC, "types.FunctionType (functions built from code objects)"),
    "types.CodeType": (DYNAMIC, "types.CodeType (code objects)"),
    "types.LambdaType": (DYNAMIC, "types.LambdaType (functions built from code objects)"),
    "pickle.load": (DYNAMIC, "unpickling (runs any code the data names)"),
    "pickle.loads": (DYNAMIC, "unpickling (runs any code the data names)"),
    "pickle.Unpickler": (DYNAMIC, "unpickling (runs any code the data names)"),
    "_pickle": (DYNAMIC, "unpickling (runs any code the data names)"),
    "dill.load": (DYNAMIC, "unpickling with dill (runs any code the data names)"),
    "dill.loads": (DYNAMIC, "unpickling with dill (runs any code the data names)"),
    "dill.Unpickler": (DYNAMIC, "unpickling with dill (runs any code the data names)"),
    "cloudpickle.load": (DYNAMIC, "unpickling with cloudpickle (runs any code the data names)"),
    "cloudpickle.loads": (DYNAMIC, "unpickling with cloudpickle (runs any code the data names)"),
}

# Builtins that run or find code by name.
_DYNAMIC_BUILTINS = {
    "exec": "exec (runs code given as a string)",
    "eval": "eval (runs code given as a string)",
    "compile": "compile (builds code from a string)",
    "__import__": "__import__ (imports chosen at run time)",
    "getattr": "getattr",
    "setattr": "setattr",
    "delattr": "delattr",
    "vars": "vars()",
    "globals": "globals()",
    "locals": "locals()",
    "breakpoint": "breakpoint()",
}
for _name in ("exec", "eval", "compile", "__import__", "breakpoint"):
    _DENIED[f"builtins.{_name}"] = (DYNAMIC, _DYNAMIC_BUILTINS[_name])

# getattr with a computed name is flagged on these (reading from other modules is honest:
# getattr(torch, activation)).
_SENSITIVE_ROOTS = {
    "sys", "os", "posix", "builtins", "gc", "inspect", "types", "importlib", "traceback", "operator",
    "functools", "threading", "signal", "subprocess", "socket", "pickle", "marshal", "io", "IPython",
    "ipykernel", "ctypes", "warnings", "contextlib", "unittest", "grader", "nbgrader",
}

_FRAME_FUNCTIONS = {
    "inspect.currentframe", "inspect.stack", "inspect.trace", "inspect.getouterframes",
    "inspect.getinnerframes", "inspect.getframeinfo", "inspect.getargvalues",
    "inspect.getgeneratorlocals", "inspect.getcoroutinelocals", "inspect.getasyncgenlocals",
    "inspect.getclosurevars",
}
for _name in _FRAME_FUNCTIONS:
    _DENIED[_name] = (FRAMES, f"{_name} (other code's frames or variables)")

_FRAME_ATTRIBUTES = {
    "f_back", "f_locals", "f_globals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next",
    "gi_frame", "cr_frame", "ag_frame",
}
_DUNDER_ATTRIBUTES = {
    "__dict__", "__globals__", "__code__", "__closure__", "__subclasses__", "__builtins__",
    "__class__", "__bases__", "__base__", "__mro__", "__defaults__", "__kwdefaults__",
    "__getattribute__", "__setattr__", "__delattr__", "__self__", "__func__", "__loader__",
    "__spec__", "__import__", "__reduce__", "__reduce_ex__", "__traceback__",
}
_SHELL_ATTRIBUTES = {
    "showtraceback", "showsyntaxerror", "set_custom_exc", "custom_exceptions",
    "input_transformers_post", "input_transformers_cleanup", "input_transformer_manager",
    "ast_transformers", "run_cell", "run_cell_async", "run_ast_nodes", "display_pub",
    "display_formatter", "user_ns", "user_ns_hidden", "user_global_ns", "history_manager",
    "register_magic_function", "register_magics", "magics_manager", "excepthook", "displayhook",
    "_ip", "_showtraceback",
}
_SENSITIVE_STRINGS = _FRAME_ATTRIBUTES | _DUNDER_ATTRIBUTES | _SHELL_ATTRIBUTES | {
    "_getframe", "settrace", "setprofile", "addaudithook", "get_objects", "get_referrers", "get_referents",
}
_HISTORY_NAMES = {"In", "Out", "_ih", "_oh", "_dh", "_i", "_ii", "_iii"}

_BUILTIN_NAMES = {name for name in dir(builtins) if not name.startswith("_")}
_MUTATING_METHODS = {"update", "pop", "popitem", "setdefault", "clear", "__setitem__", "__delitem__"}

_ALIAS_NODES = (
    ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.Assign, ast.AnnAssign,
    ast.NamedExpr, ast.For, ast.AsyncFor, ast.comprehension, ast.withitem, ast.Call,
)

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _denied(qualname: str) -> tuple[str, str] | None:
    """The (group, words) for a dotted name, or None if it is fine."""
    for allowed in _ALLOWED_MODULES:
        if qualname == allowed or qualname.startswith(allowed + "."):
            return None
    parts = qualname.split(".")
    for end in range(len(parts), 0, -1):
        found = _DENIED.get(".".join(parts[:end]))
        if found:
            return found
    return None


def _is_config(qualname: str) -> bool:
    if qualname.startswith(_CONFIG_PREFIXES):
        return True
    return qualname.startswith("tqdm.") and qualname.endswith(".monitor_interval")


def _str_value(node, depth: int = 0) -> str | None:
    """The value of a string known before the code runs: a literal, and what simple operations
    make of literals (``+``, slicing such as ``[::-1]``, ``"".join([...])``, f-strings of
    literals), so that a name spelled backwards or in pieces is still seen."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if depth > 50:
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts, stack = [], [node]
        while stack:
            item = stack.pop()
            if isinstance(item, ast.BinOp) and isinstance(item.op, ast.Add):
                stack += [item.right, item.left]
                continue
            value = _str_value(item, depth + 1)
            if value is None or len(parts) > 1000:
                return None
            parts.append(value)
        return "".join(parts)
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        value = _str_value(node.value, depth + 1)
        bounds = []
        for bound in (node.slice.lower, node.slice.upper, node.slice.step):
            if bound is None:
                bounds.append(None)
            elif isinstance(bound, ast.Constant) and isinstance(bound.value, int) and not isinstance(bound.value, bool):
                bounds.append(bound.value)
            elif isinstance(bound, ast.UnaryOp) and isinstance(bound.op, ast.USub) \
                    and isinstance(bound.operand, ast.Constant) and isinstance(bound.operand.value, int):
                bounds.append(-bound.operand.value)
            else:
                return None
        if value is None or bounds[2] == 0:
            return None
        return value[slice(*bounds)]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join" \
            and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], (ast.List, ast.Tuple)):
        separator = _str_value(node.func.value, depth + 1)
        parts = [_str_value(element, depth + 1) for element in node.args[0].elts]
        if separator is None or None in parts:
            return None
        return separator.join(parts)
    if isinstance(node, ast.JoinedStr):
        parts = [_str_value(value, depth + 1) for value in node.values]
        return None if None in parts else "".join(parts)
    if isinstance(node, ast.FormattedValue) and node.conversion in (-1, 115) and node.format_spec is None:
        return _str_value(node.value, depth + 1)  # {'text'} or {'text'!s}
    return None


class _Index:
    """One pass over a tree: every node in source order (with ``_parent`` set), the bindings in
    the notebook's namespace, the names bound anywhere, the nodes that can alias a module, and the
    calls of code-timing magics. Kept on the tree, so a tree parsed once is indexed once."""

    __slots__ = ("nodes", "bindings", "bound", "alias_nodes", "magic_calls")

    def __init__(self, tree):
        self.nodes, self.bindings, self.alias_nodes, self.magic_calls = [], [], [], []
        self.bound: set[str] = set()
        tree._parent = None
        # (node, the scope it is in: "module" / "function" / "class" / "comprehension", the names
        # its function declares global). Iterative: deeply nested code must not crash the scan.
        stack = [(tree, "module", frozenset())]
        while stack:
            node, scope, declared = stack.pop()
            self.nodes.append(node)
            self._note(node)
            if isinstance(node, ast.Global) and isinstance(declared, set):
                declared.update(node.names)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if scope == "module" or node.name in declared:
                    self.bindings.append((node.name, node, node))
                inner = ("class", frozenset()) if isinstance(node, ast.ClassDef) else ("function", set())
            elif isinstance(node, ast.Lambda):
                inner = ("function", set())
            elif isinstance(node, _COMPREHENSIONS):
                inner = ("comprehension" if scope == "module" else scope, declared)
            else:
                if scope == "module" or declared or scope == "comprehension":
                    self.bindings.extend(_bindings_here(node, scope, declared))
                inner = (scope, declared)
            children = list(ast.iter_child_nodes(node))
            for child in children:
                child._parent = node
            stack.extend((child, *inner) for child in reversed(children))

    def _note(self, node) -> None:
        if isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load):
                self.bound.add(node.id)
        elif isinstance(node, ast.arg):
            self.bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self.bound.update(name for name, _ in _import_bindings(node))
        if isinstance(node, _ALIAS_NODES):
            if isinstance(node, ast.Call):
                if isinstance(node.func, ast.Attribute) and node.func.attr in ("run_line_magic", "run_cell_magic"):
                    self.magic_calls.append(node)
                if not (node.args or node.keywords) or not isinstance(node.func, (ast.Name, ast.Lambda)):
                    return
            self.alias_nodes.append(node)


def _index(tree) -> _Index:
    index = getattr(tree, "_static_scan_index", None)
    if index is None:
        index = _Index(tree)
        tree._static_scan_index = index
    return index


def _is_get_ipython_call(node) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "get_ipython"
        and not node.args
        and not node.keywords
    )


_TRANSFORMER = None


def _to_python(source: str) -> str:
    global _TRANSFORMER
    if _TRANSFORMER is None:
        from IPython.core.inputtransformer2 import TransformerManager

        _TRANSFORMER = TransformerManager()
    return _TRANSFORMER.transform_cell(source)


# IPython runs cells with top-level `await`, and keeps the __future__ flags of earlier cells
# (barry_as_FLUFL changes the grammar): code that parses only that way must still be scanned.
_PARSE_FLAGS = (
    ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
    ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT | __future__.barry_as_FLUFL.compiler_flag,
)


def _parse(source: str, ipython: bool):
    try:
        code = _to_python(source) if ipython else source
    except Exception:  # a transformer error on odd input: IPython fails the cell the same way
        return None
    for flags in _PARSE_FLAGS if ipython else _PARSE_FLAGS[:1]:
        try:
            with AST_LOCK:  # grader/grading/parsing.py: one thread at a time on CPython 3.11
                return compile(code, "<cell>", "exec", flags=flags, dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return None


# --- Names: what refers to a module, what the instructor defines -------------------------------


class _Names:
    """Notebook-wide knowledge: which names refer to modules (or their attributes), and which
    names the instructor's cells bind. Names are tracked flat (not per scope): conservative."""

    def __init__(self):
        self.aliases: dict[str, set[str]] = {}
        self.instructor: dict[str, str] = {}  # name -> what binds it ("the module numpy", "a function")
        self.instructor_imports: dict[str, str] = {}  # name -> qualified module name
        self.bound: set[str] = set()  # every name the scanned code binds (any scope)
        self._memo: dict[int, frozenset] = {}

    def add(self, name: str, qualnames) -> bool:
        known = self.aliases.setdefault(name, set())
        before = len(known)
        known.update(qualnames)
        return len(known) != before

    def resolve(self, node) -> frozenset:
        """The dotted names an expression can stand for (``np.testing`` -> {"numpy.testing"}):
        attribute chains and ``getattr(x, "literal")`` rooted at a module alias, ``__import__``/
        ``importlib.import_module`` of a literal, ``sys.modules["..."]``. Iterative and memoised,
        so long chains cost linear time."""
        memo = self._memo
        chain, current = [], node
        while id(current) not in memo:
            if isinstance(current, ast.Attribute):
                chain.append((current, current.attr))
                current = current.value
                continue
            if isinstance(current, ast.Call) and isinstance(current.func, ast.Name) and current.func.id == "getattr" \
                    and len(current.args) >= 2:
                literal = _str_value(current.args[1])
                if literal is not None:
                    chain.append((current, literal))
                    current = current.args[0]
                    continue
            memo[id(current)] = self._resolve_root(current)
            break
        result = memo[id(current)]
        for link, attribute in reversed(chain):
            if result:
                # Past 64 parts a name stops growing: it is still known to be rooted where it is.
                result = frozenset(root if root.count(".") >= 64 else f"{root}.{attribute}" for root in result)
            memo[id(link)] = result
        return result

    def _resolve_root(self, node) -> frozenset:
        if isinstance(node, ast.Name):
            roots = set(self.aliases.get(node.id, ()))
            if node.id in self.instructor and node.id not in self.instructor_imports:
                roots.add(f"{_INSTRUCTOR}{node.id}")
            if node.id == "__builtins__":
                roots.add("builtins")
            return frozenset(roots)
        if isinstance(node, ast.Call) and node.args:
            literal = _str_value(node.args[0])
            func = node.func
            if literal and (
                (isinstance(func, ast.Name) and func.id == "__import__")
                or "importlib.import_module" in self.resolve(func)
                or "sys.modules.get" in self.resolve(func)
            ):
                return frozenset({literal})
        if isinstance(node, ast.Subscript):
            literal = _str_value(node.slice)
            if literal and "sys.modules" in self.resolve(node.value):
                return frozenset({literal})
        return frozenset()


def _import_bindings(node):
    """(name bound, qualified name) for an import statement."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                yield alias.asname, alias.name
            else:
                top = alias.name.split(".")[0]
                yield top, top
    elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
        for alias in node.names:
            if alias.name != "*":
                yield alias.asname or alias.name, f"{node.module}.{alias.name}"


def _collect_instructor(trees, names: _Names) -> None:
    for tree in trees:
        for node in tree.body:
            for stmt in _toplevel_statements(node):
                if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    for name, qualname in _import_bindings(stmt):
                        names.instructor[name] = f"import ({qualname})"
                        names.instructor_imports[name] = qualname
                elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.instructor.setdefault(stmt.name, "define as a function")
                elif isinstance(stmt, ast.ClassDef):
                    names.instructor.setdefault(stmt.name, "define as a class")


def _toplevel_statements(node):
    """A module-level statement, and the statements nested in its if/try/with/for blocks."""
    stack = [node]
    while stack:
        stmt = stack.pop()
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            for child in getattr(stmt, field, ()) or ():
                if isinstance(child, ast.ExceptHandler):
                    stack.extend(child.body)
                elif isinstance(child, ast.stmt):
                    stack.append(child)


def _collect_aliases(trees, names: _Names) -> None:
    """Imports, and the names that end up referring to a module: assignments of module chains,
    parameters with a module as default, parameters a module is passed to."""
    nodes = [node for tree in trees for node in _index(tree).alias_nodes]
    functions: dict[str, list] = {}
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, qualname in _import_bindings(node):
                names.add(name, {qualname})
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.setdefault(node.name, []).append(node.args)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    functions.setdefault(target.id, []).append(node.value.args)
    for _ in range(6):
        changed = False
        names._memo.clear()
        for node in nodes:
            pairs = []
            if isinstance(node, ast.Assign):
                pairs = [(target, node.value) for target in node.targets]
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)):
                if node.value is not None:
                    pairs = [(node.target, node.value)]
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                if isinstance(node.iter, (ast.Tuple, ast.List, ast.Set)):
                    pairs = [(node.target, element) for element in node.iter.elts]
            elif isinstance(node, ast.withitem):
                if node.optional_vars is not None:
                    pairs = [(node.optional_vars, node.context_expr)]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                changed |= _bind_defaults(node.args, names)
            elif isinstance(node, ast.Call):
                targets = []
                if isinstance(node.func, ast.Lambda):
                    targets = [node.func.args]
                elif isinstance(node.func, ast.Name):
                    targets = functions.get(node.func.id, [])
                for arguments in targets:
                    changed |= _bind_call(arguments, node, names)
            for target, value in pairs:
                changed |= _bind_target(target, value, names)
        if not changed:
            break
    names._memo.clear()


def _bind_target(target, value, names: _Names) -> bool:
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
        changed = False
        for sub_target, sub_value in zip(target.elts, value.elts):
            changed |= _bind_target(sub_target, sub_value, names)
        return changed
    if isinstance(target, ast.Name):
        resolved = names.resolve(value)
        if resolved:
            return names.add(target.id, resolved)
    return False


def _bind_defaults(arguments: ast.arguments, names: _Names) -> bool:
    changed = False
    positional = arguments.posonlyargs + arguments.args
    for arg, default in zip(positional[len(positional) - len(arguments.defaults):], arguments.defaults):
        resolved = names.resolve(default)
        if resolved:
            changed |= names.add(arg.arg, resolved)
    for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults):
        if default is not None:
            resolved = names.resolve(default)
            if resolved:
                changed |= names.add(arg.arg, resolved)
    return changed


def _bind_call(arguments: ast.arguments, call: ast.Call, names: _Names) -> bool:
    changed = False
    positional = arguments.posonlyargs + arguments.args
    for arg, value in zip(positional, call.args):
        if isinstance(value, ast.Starred):
            break
        resolved = names.resolve(value)
        if resolved:
            changed |= names.add(arg.arg, resolved)
    by_name = {arg.arg: arg for arg in positional + arguments.kwonlyargs}
    for keyword in call.keywords:
        if keyword.arg in by_name:
            resolved = names.resolve(keyword.value)
            if resolved:
                changed |= names.add(keyword.arg, resolved)
    return changed


# --- The checks --------------------------------------------------------------------------------


class _Findings:
    def __init__(self, name: str):
        self.name = name
        self.flags: list[Flag] = []
        self._seen: set = set()
        self.dropped = 0

    def add(self, where: str, line: int, group: str, text: str) -> None:
        key = (where, line, group)
        if key in self._seen:
            return
        self._seen.add(key)
        if len(self.flags) >= MAX_FLAGS_PER_FILE:
            self.dropped += 1
            return
        place = f"{self.name}, {where}, line {line}" if where else f"{self.name}, line {line}"
        self.flags.append(Flag("static", f"{place}: {group}: {text}"))

    def result(self) -> list[Flag]:
        if self.dropped:
            return self.flags + [Flag("static", f"{self.name}: {self.dropped} more findings not listed")]
        return self.flags


def _plain(qualname: str) -> str:
    return qualname[len(_INSTRUCTOR):] if qualname.startswith(_INSTRUCTOR) else qualname


def _describe(qualname: str) -> str:
    if qualname.startswith(_INSTRUCTOR):
        return f"{_plain(qualname)} (defined by the instructor's cells)"
    return qualname


class _Scanner:
    """Checks one parsed cell or file."""

    def __init__(self, names: _Names, findings: _Findings, where: str, offset: int, notebook: bool):
        self.names = names
        self.findings = findings
        self.where = where
        self.offset = offset
        self.notebook = notebook

    def flag(self, node, group: str, text: str) -> None:
        self.findings.add(self.where, getattr(node, "lineno", 1) + self.offset, group, text)

    def run(self, tree) -> None:
        index = _index(tree)
        self._check_toplevel_bindings(index)
        for node in index.nodes:
            method = getattr(self, f"_visit_{type(node).__name__}", None)
            if method is not None:
                method(node)

    # Names and attributes ---------------------------------------------------------------------

    def _check_reference(self, node) -> None:
        """A load of a name or attribute chain that resolves to something denied."""
        parent = node._parent
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return  # the outermost chain is checked
        for qualname in sorted(self.names.resolve(node)):
            if qualname in ("sys.stdout", "sys.stderr"):
                continue
            if qualname.startswith(("sys.stdout.", "sys.stderr.")):
                attribute = qualname.split(".")[2]
                if attribute not in _STREAM_ATTRIBUTES:
                    self.flag(node, LOWLEVEL, f"reaches into {'.'.join(qualname.split('.')[:2])} ({attribute})")
                continue
            denied = _denied(qualname)
            if denied:
                group, words = denied
                self.flag(node, group, f"uses {words}: {qualname}")
                return

    def _visit_Name(self, node: ast.Name) -> None:
        identifier = node.id
        if identifier == "get_ipython":
            self._check_get_ipython(node)
            return
        if identifier in ("__builtins__", "__loader__", "__spec__"):
            if identifier == "__builtins__":
                self.flag(node, MONKEYPATCH, "uses __builtins__ (the builtins namespace every cell shares)")
            else:
                self.flag(node, DYNAMIC, f"uses {identifier}")
            return
        if isinstance(node.ctx, ast.Load):
            if identifier in ("exit", "quit") and identifier not in self.names.bound and self.notebook:
                call = node._parent
                if not (isinstance(call, ast.Call) and call.func is node):
                    self.flag(node, IPYTHON, f"uses IPython's {identifier} object other than by calling it "
                                             "(it holds the shell)")
                return
            if identifier in _DYNAMIC_BUILTINS and identifier not in self.names.aliases:
                self._check_dynamic_builtin(node)
                return
            if self.notebook and identifier not in self.names.bound and (
                identifier in _HISTORY_NAMES or (identifier.startswith("_i") and identifier[2:].isdigit())
            ):
                self.flag(node, IPYTHON, f"reads IPython's history {identifier} "
                                         "(the source and results of earlier cells, tests included)")
                return
            self._check_reference(node)

    def _visit_Attribute(self, node: ast.Attribute) -> None:
        attribute = node.attr
        if attribute in _FRAME_ATTRIBUTES or attribute == "__traceback__":
            self.flag(node, FRAMES, f"uses the frame attribute .{attribute}")
        elif attribute in _DUNDER_ATTRIBUTES:
            parent = node._parent
            if attribute == "__class__" and isinstance(node.ctx, ast.Load) and isinstance(parent, ast.Attribute) \
                    and parent.attr in ("__name__", "__qualname__", "__module__"):
                pass  # type(self).__name__ written the long way
            else:
                self.flag(node, DYNAMIC, f"uses the attribute .{attribute} (opens up an object's internals)")
        elif attribute in _SHELL_ATTRIBUTES:
            self.flag(node, IPYTHON, f"uses the shell's .{attribute}")
        elif attribute in ("register", "unregister") and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "events":
            self.flag(node, IPYTHON, f"registers a shell event callback (.events.{attribute})")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._check_store(node, node.value, attribute, isinstance(node.ctx, ast.Del))
        else:
            self._check_reference(node)

    def _check_store(self, node, owner, attribute, delete: bool) -> None:
        """An assignment to (or deletion of) ``owner.attribute``."""
        verb = "deletes" if delete else "assigns to"
        for root in sorted(self.names.resolve(owner)):
            qualname = f"{root}.{attribute}"
            if qualname in ("sys.stdout", "sys.stderr"):
                self.flag(node, LOWLEVEL, f"replaces {qualname} (the recorded output)")
                return
            if _is_config(qualname):
                continue
            self.flag(node, MONKEYPATCH, f"{verb} {_plain(qualname)}, an attribute of {_describe(root)}")
            return

    def _visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.slice, ast.Slice):
            self._check_folded(node)
        # `getattr(np, name)[...] = ...`: writing into an attribute fetched by a computed name.
        value = node.value
        if isinstance(node.ctx, (ast.Store, ast.Del)) and isinstance(value, ast.Attribute) and value.attr == "__dict__":
            roots = self.names.resolve(value.value)
            if roots:
                self.flag(node, MONKEYPATCH, f"writes into the namespace of {_describe(sorted(roots)[0])} (.__dict__)")
        if isinstance(node.ctx, (ast.Store, ast.Del)) and isinstance(value, ast.Call) \
                and isinstance(value.func, ast.Name) and value.func.id == "getattr" and len(value.args) >= 2 \
                and _str_value(value.args[1]) is None and self.names.resolve(value.args[0]):
            self.flag(node, DYNAMIC, "writes into an attribute of a module fetched by a computed name")

    def _check_dynamic_builtin(self, node: ast.Name) -> None:
        identifier = node.id
        call = node._parent
        if not (isinstance(call, ast.Call) and call.func is node):
            self.flag(node, DYNAMIC, f"uses the builtin {identifier} as a value (hides what it is called on)")
            return
        if identifier == "breakpoint":
            self.flag(node, FRAMES, "calls breakpoint() (a debugger sees and edits every frame)")
        elif identifier in ("exec", "eval", "compile", "__import__"):
            self.flag(node, DYNAMIC, f"calls {_DYNAMIC_BUILTINS[identifier]}")
        elif identifier in ("getattr", "setattr", "delattr"):
            self._check_attr_builtin(call, identifier)
        elif identifier == "vars" and call.args:
            roots = self.names.resolve(call.args[0])
            if roots:
                group = MONKEYPATCH if self._mutated(call) else DYNAMIC
                self.flag(node, group, f"uses vars() of {_describe(sorted(roots)[0])} (its namespace, writable)")
        elif identifier in ("vars", "globals", "locals"):
            parent = call._parent
            if isinstance(parent, ast.Compare) and call in parent.comparators and all(
                isinstance(op, (ast.In, ast.NotIn)) for op in parent.ops
            ):
                return  # 'name' in globals()
            what = "writes" if self._mutated(call) else "reads"
            self.flag(node, DYNAMIC, f"{what} the notebook's namespace by name through {identifier}()")

    def _mutated(self, node) -> bool:
        parent = node._parent
        if isinstance(parent, ast.Subscript) and parent.value is node:
            return isinstance(parent.ctx, (ast.Store, ast.Del))
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return parent.attr in _MUTATING_METHODS
        return False

    def _check_attr_builtin(self, call: ast.Call, identifier: str) -> None:
        if len(call.args) < 2:
            return
        owner, name = call.args[0], _str_value(call.args[1])
        if name is not None:
            # getattr(x, "literal") is x.literal: the attribute checks apply to it.
            if name in _FRAME_ATTRIBUTES or name == "__traceback__":
                self.flag(call, FRAMES, f"uses the frame attribute {name!r} through {identifier}")
            elif name in _DUNDER_ATTRIBUTES:
                self.flag(call, DYNAMIC, f"uses the attribute {name!r} through {identifier}")
            elif name in _SHELL_ATTRIBUTES:
                self.flag(call, IPYTHON, f"uses the shell's {name!r} through {identifier}")
            if identifier == "getattr":
                self._check_reference(call)
            else:
                self._check_store(call, owner, name, identifier == "delattr")
            return
        roots = self.names.resolve(owner)
        if identifier == "getattr":
            if any(root.split(".")[0] in _SENSITIVE_ROOTS or _denied(root) for root in roots) or (
                isinstance(owner, ast.Name) and owner.id == "__builtins__"
            ):
                self.flag(call, DYNAMIC, f"getattr with a computed name on {sorted(roots)[0] if roots else '__builtins__'}")
        elif roots:
            self.flag(call, MONKEYPATCH, f"{identifier} with a computed name on {_describe(sorted(roots)[0])}")

    # Objects equal to anything ----------------------------------------------------------------

    def _visit_ClassDef(self, node: ast.ClassDef) -> None:
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in _RIGGED_METHODS:
                body = item.body
                if body and isinstance(body[0], ast.Expr) and _str_value(body[0].value) is not None:
                    body = body[1:]  # the docstring
                if len(body) == 1 and isinstance(body[0], ast.Return) and _constant_bool(body[0].value):
                    self.flag(item, RIGGED, f"{node.name}.{item.name} always returns {body[0].value.value}: "
                                            "an object that passes any comparison")
                elif item.name in _PROTOCOL_TAKEOVER:
                    self.flag(item, RIGGED, f"{node.name}.{item.name} takes over NumPy/torch operations on its "
                                            "instances: an answer of this type decides how it is checked")
                elif _value_type_bases(node):
                    self.flag(item, RIGGED, f"{node.name} subclasses {_value_type_bases(node)[0]} with its own "
                                            f"{item.name}: an answer of this type decides its own comparison")
            elif (isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in _VALUE_ARITHMETIC
                  and _value_type_bases(node)):
                self.flag(item, RIGGED, f"{node.name} subclasses {_value_type_bases(node)[0]} with its own "
                                        f"{item.name}: a tolerance check on an answer of this type can be rigged")
            elif isinstance(item, ast.Assign) and isinstance(item.value, ast.Lambda) and _constant_bool(item.value.body):
                for target in item.targets:
                    if isinstance(target, ast.Name) and target.id in _RIGGED_METHODS:
                        self.flag(item, RIGGED, f"{node.name}.{target.id} always returns {item.value.body.value}: "
                                                "an object that passes any comparison")

    # Calls and strings ------------------------------------------------------------------------

    def _visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr == "join":
            self._check_folded(node)
        resolved = self.names.resolve(node.func)
        if resolved & {"timeit.timeit", "timeit.repeat", "timeit.Timer"}:
            values = list(node.args) + [keyword.value for keyword in node.keywords]
            if any(_str_value(value) is not None or isinstance(value, ast.JoinedStr) for value in values):
                self.flag(node, DYNAMIC, "timeit given code as a string (runs it)")

    def _visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            self._check_string(node, node.value)

    def _visit_BinOp(self, node: ast.BinOp) -> None:
        if not isinstance(node._parent, ast.BinOp):
            self._check_folded(node)

    def _visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        self._check_folded(node)

    def _check_folded(self, node) -> None:
        value = _str_value(node)
        if value is not None:
            self._check_string(node, value)

    def _check_string(self, node, value: str) -> None:
        if "/proc/" in value or value == "/proc":
            self.flag(node, LOWLEVEL, "names a /proc path (the process's memory and descriptors)")
        elif value in _SENSITIVE_STRINGS:
            self.flag(node, DYNAMIC, f"names the attribute {value!r} in a string")

    # Imports ----------------------------------------------------------------------------------

    def _visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            denied = _denied(alias.name)
            if denied:
                self.flag(node, denied[0], f"imports {denied[1]}")

    def _visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            return
        for alias in node.names:
            qualname = node.module if alias.name == "*" else f"{node.module}.{alias.name}"
            denied = _denied(qualname)
            if denied:
                self.flag(node, denied[0], f"imports {denied[1]}: {qualname}")

    # IPython ----------------------------------------------------------------------------------

    def _check_get_ipython(self, node: ast.Name) -> None:
        call = node._parent
        if not (_is_get_ipython_call(call) and call.func is node):
            self.flag(node, IPYTHON, "uses get_ipython (the shell running the tests)")
            return
        attribute = call._parent
        method = attribute._parent if isinstance(attribute, ast.Attribute) else None
        if not (isinstance(method, ast.Call) and method.func is attribute):
            self.flag(node, IPYTHON, "uses the shell object get_ipython()")
            return
        literals = [_str_value(arg) for arg in method.args]
        if attribute.attr in ("system", "getoutput"):
            self.flag(node, LOWLEVEL, "runs a shell command (!...)")
        elif attribute.attr in ("run_line_magic", "run_cell_magic") and literals and None not in literals \
                and not method.keywords:
            self._check_magic(node, attribute.attr == "run_cell_magic", literals)
        else:
            self.flag(node, IPYTHON, f"uses the shell's .{attribute.attr}")

    def _check_magic(self, node, cell: bool, literals: list[str]) -> None:
        magic, line = literals[0], literals[1] if len(literals) > 1 else ""
        prefix = "%%" if cell else "%"
        if magic in _CODE_MAGICS and len(literals) == (3 if cell else 2):
            code = line
            if magic == "timeit":
                code = _strip_timeit_options(line)
            if cell:
                self._scan_nested(node, code, node.lineno - 1)  # %%timeit's setup code
                self._scan_nested(node, literals[2], node.lineno)
            else:
                self._scan_nested(node, code, node.lineno - 1)
            return
        if not cell and len(literals) == 2 and (
            magic in _LINE_MAGICS_ANY_ARG
            or (magic == "load_ext" and line.strip() == "autoreload")
            or (magic == "config" and line.strip().startswith("InlineBackend."))
        ):
            return
        if magic in _SHELL_MAGICS:
            self.flag(node, LOWLEVEL, f"runs a shell command ({prefix}{magic})")
        else:
            self.flag(node, IPYTHON, f"uses the {prefix}{magic} magic (not on the allow-list of harmless magics)")

    def _scan_nested(self, node, code: str, offset: int) -> None:
        if not code.strip():
            return
        tree = _parse_cached(code)
        if tree is None:
            return
        _Scanner(self.names, self.findings, self.where, self.offset + offset, self.notebook).run(tree)

    # Rebinding at notebook level --------------------------------------------------------------

    def _check_toplevel_bindings(self, index: _Index) -> None:
        for name, node, value in index.bindings:
            if name in self.names.instructor:
                if isinstance(value, (ast.Import, ast.ImportFrom)):
                    original = self.names.instructor_imports.get(name, "")
                    new = dict(_import_bindings(value)).get(name, "")
                    if original and new.split(".")[0] == original.split(".")[0]:
                        continue
                self.flag(node, MONKEYPATCH, f"rebinds {name}, which the instructor's cells {self.names.instructor[name]}")
            elif name in _BUILTIN_NAMES and _replaces_with_code(value, self.names):
                self.flag(node, MONKEYPATCH, f"rebinds the builtin {name} for every later cell")


_RIGGED_METHODS = {
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__",
    "__array_function__", "__array_ufunc__", "__torch_function__",
}
_PROTOCOL_TAKEOVER = {"__array_function__", "__array_ufunc__", "__torch_function__"}
# Arithmetic that tolerance checks (abs(answer - expected) < eps, np.isclose) go through.
_VALUE_ARITHMETIC = {"__sub__", "__rsub__", "__abs__", "__float__", "__int__", "__index__", "__round__", "__array__"}
# Builtin and library value types an answer is usually compared as.
_VALUE_TYPES = {"int", "float", "complex", "bool", "str", "bytes", "tuple", "list", "dict", "set", "frozenset",
                "ndarray", "generic", "number", "floating", "integer", "float64", "float32", "int64", "Tensor",
                "Series", "DataFrame", "Decimal", "Fraction"}


def _value_type_bases(node: ast.ClassDef) -> list[str]:
    names = []
    for base in node.bases:
        name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else None
        if name in _VALUE_TYPES:
            names.append(name)
    return names


def _constant_bool(node) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, bool)


def _replaces_with_code(value, names: _Names) -> bool:
    """Whether a binding puts other code in place of a builtin (not `max = 3`)."""
    if isinstance(value, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.Import, ast.ImportFrom)):
        return True
    if isinstance(value, ast.Name):
        return value.id in _BUILTIN_NAMES or bool(names.resolve(value))
    if isinstance(value, ast.Attribute):
        return bool(names.resolve(value))
    return False


def _bindings_here(node, scope: str, declared) -> list:
    def wanted(name):
        return scope == "module" or name in declared

    found = []
    if scope == "comprehension":
        # Only := binds outside a comprehension.
        if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            found.append((node.target.id, node, node.value))
        return found
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        for name, _ in _import_bindings(node):
            if wanted(name):
                found.append((name, node, node))
    elif isinstance(node, ast.Assign):
        for target in node.targets:
            for name_node, value in _paired_names(target, node.value):
                if wanted(name_node.id):
                    found.append((name_node.id, name_node, value))
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
        if wanted(node.target.id):
            found.append((node.target.id, node.target, node.value if isinstance(node, ast.AnnAssign) else None))
    elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name) and wanted(node.target.id):
        found.append((node.target.id, node.target, node.value))
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        for name_node in _target_names(node.target):
            if wanted(name_node.id):
                found.append((name_node.id, name_node, None))
    elif isinstance(node, ast.withitem) and node.optional_vars is not None:
        for name_node in _target_names(node.optional_vars):
            if wanted(name_node.id):
                found.append((name_node.id, name_node, None))
    elif isinstance(node, ast.Delete):
        for target in node.targets:
            for name_node in _target_names(target):
                if wanted(name_node.id):
                    found.append((name_node.id, name_node, None))
    elif isinstance(node, ast.ExceptHandler) and node.name and wanted(node.name):
        found.append((node.name, node, None))
    return found


def _target_names(target):
    if isinstance(target, ast.Name):
        return [target]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _paired_names(target, value):
    if isinstance(target, ast.Name):
        return [(target, value)]
    if isinstance(target, (ast.Tuple, ast.List)):
        if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
            return [pair for t, v in zip(target.elts, value.elts) for pair in _paired_names(t, v)]
        return [(name, None) for name in _target_names(target)]
    if isinstance(target, ast.Starred):
        return [(name, None) for name in _target_names(target.value)]
    return []


def _strip_timeit_options(line: str) -> str:
    """The statement of a %timeit line, without its options (-n N -r R -p P -q -o -t -c)."""
    rest = line.strip()
    while rest.startswith("-"):
        option, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        if option in ("-n", "-r", "-p"):
            _, _, rest = rest.partition(" ")
            rest = rest.lstrip()
    return rest


def _bound_names(trees) -> set[str]:
    bound: set[str] = set()
    for tree in trees:
        bound |= _index(tree).bound
    return bound


# --- Notebooks ---------------------------------------------------------------------------------


def _nbgrader(cell) -> dict:
    metadata = cell.get("metadata") or {}
    meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def _instructor_cell(meta: dict) -> bool:
    """Locked and test cells: nbgrader restores their source from the release."""
    return bool(meta.get("locked")) or (bool(meta.get("grade")) and not meta.get("solution"))


def _source(cell) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(str(part) for part in source)
    return source if isinstance(source, str) else ""


def _code_cells(notebook):
    cells = notebook.get("cells", []) if isinstance(notebook, dict) else []
    for index, cell in enumerate(cells if isinstance(cells, list) else []):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            yield index, cell


@functools.lru_cache(maxsize=256)
def _parse_cached(source: str):
    return _parse(source, ipython=True)


def _timed_code(trees) -> list:
    """The trees of code given to %time/%timeit/%%time/%%timeit (it runs in the notebook)."""
    found, pending = [], list(trees)
    while pending and len(found) < 100:
        tree = pending.pop()
        for node in _index(tree).magic_calls:
            if not _is_get_ipython_call(node.func.value):
                continue
            literals = [_str_value(arg) for arg in node.args]
            if not literals or None in literals or literals[0] not in _CODE_MAGICS:
                continue
            codes = literals[1:]
            if literals[0] == "timeit" and codes:
                codes[0] = _strip_timeit_options(codes[0])
            for code in codes:
                nested = _parse_cached(code) if code.strip() else None
                if nested is not None:
                    found.append(nested)
                    pending.append(nested)
    return found


def scan_notebook(notebook, release=None, name: str = "notebook.ipynb") -> list[Flag]:
    """Flags for the code a student wrote in ``notebook`` (an nbformat 4 notebook, as a dict).

    ``release`` is the release version of the notebook: with it, only cells whose grade id is a
    locked or test cell of the release are skipped (a student cannot hide code by marking their
    own cell locked), and names the release's setup and helper cells import or define are watched
    for rebinding. Without it, the notebook's own locked and test cells stand in for the release.
    """
    release_locked = None
    if release is not None:
        release_locked = {
            _nbgrader(cell).get("grade_id")
            for _, cell in _code_cells(release)
            if _instructor_cell(_nbgrader(cell)) and isinstance(_nbgrader(cell).get("grade_id"), str)
        }
    instructor_sources, student = [], []
    for index, cell in _code_cells(notebook):
        meta = _nbgrader(cell)
        grade_id = meta.get("grade_id")
        if release_locked is None:
            skip = _instructor_cell(meta)
        else:
            skip = isinstance(grade_id, str) and grade_id in release_locked
        where = f"cell {grade_id!r}" if isinstance(grade_id, str) and grade_id else f"cell {index + 1}"
        if skip:
            if release is None:
                instructor_sources.append((_source(cell), bool(meta.get("grade"))))
        else:
            student.append((where, _source(cell)))
    if release is not None:
        instructor_sources = [
            (_source(cell), bool(_nbgrader(cell).get("grade")))
            for _, cell in _code_cells(release)
            if _instructor_cell(_nbgrader(cell))
        ]
    parsed = [(_parse_cached(source), test) for source, test in instructor_sources]
    instructor_trees = [tree for tree, _ in parsed if tree is not None]
    # Test cells bind their own helpers again each time they run: only the setup and helper
    # cells (locked, not graded) define names the rest of the notebook relies on.
    setup_trees = [tree for tree, test in parsed if tree is not None and not test]
    student_trees = [(where, _parse(source, ipython=True)) for where, source in student if source.strip()]
    student_trees = [(where, tree) for where, tree in student_trees if tree is not None]
    written = [tree for _, tree in student_trees]
    written += _timed_code(written)

    names = _Names()
    _collect_instructor(setup_trees, names)
    _collect_aliases(instructor_trees + written, names)
    names.bound = _bound_names(written)
    findings = _Findings(name)
    for where, tree in student_trees:
        try:
            _Scanner(names, findings, where, 0, notebook=True).run(tree)
        except RecursionError:
            findings.add(where, 1, DYNAMIC, "code nested too deeply to scan")
    return findings.result()


def scan_python_source(text: str, name: str = "module.py") -> list[Flag]:
    """Flags for a Python file a student ships (a notebook can import it)."""
    tree = _parse(text, ipython=False)
    if tree is None:
        return []
    names = _Names()
    _collect_aliases([tree], names)
    names.bound = _bound_names([tree])
    findings = _Findings(name)
    try:
        _Scanner(names, findings, "", 0, notebook=False).run(tree)
    except RecursionError:
        findings.add("", 1, DYNAMIC, "code nested too deeply to scan")
    return findings.result()


# --- Submission folders ------------------------------------------------------------------------


_TOO_LARGE = b"<too large>"


def _read_regular(name: str, dir_fd: int, limit: int) -> bytes | None:
    """A regular file's bytes, never following a symlink; None for anything else."""
    try:
        before = os.lstat(name, dir_fd=dir_fd)
    except OSError:
        return None
    if not stat.S_ISREG(before.st_mode):
        return None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (before.st_dev, before.st_ino):
            return None
        if info.st_size > limit:
            return _TOO_LARGE
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                return _TOO_LARGE
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=512)
def _installed_module(name: str) -> bool:
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return True
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin not in (None, "namespace")


def scan_submission(folder: Path, releases: dict | None = None) -> list[Flag]:
    """Flags for every notebook and ``.py`` file in a submission folder, and for shipped files the
    scan cannot read (compiled extensions, ``.pyc``, ``.pth``). ``releases`` maps a notebook's
    file name to its release notebook. Symlinks and other non-regular files are skipped silently
    (the files check flags those); nothing is followed."""
    folder = Path(folder)
    flags: list[Flag] = []
    releases = releases or {}
    try:
        walker = os.fwalk(folder, follow_symlinks=False)
        for directory, dirs, files, dir_fd in walker:
            dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
            relative_dir = Path(directory).relative_to(folder)
            for filename in sorted(files):
                flags += _scan_file(filename, relative_dir, dir_fd, releases)
    except OSError:
        pass
    return flags


def _scan_file(filename: str, relative_dir: Path, dir_fd: int, releases: dict) -> list[Flag]:
    relative = (relative_dir / filename).as_posix()
    suffix = Path(filename).suffix.lower()
    if suffix == ".pyd" or filename.endswith(".so") or ".so." in filename:
        return [Flag("static", f"{relative}: {LOWLEVEL}: ships a compiled extension module "
                               "(machine code the scan cannot read)")]
    if suffix == ".pth":
        return [Flag("static", f"{relative}: {DYNAMIC}: ships a .pth file "
                               "(path configuration that can run code at start-up)")]
    if suffix == ".pyc":
        return [Flag("static", f"{relative}: {DYNAMIC}: ships compiled Python (.pyc), which the scan cannot read")]
    if suffix not in (".ipynb", ".py", ".pyw"):
        return []
    limit = MAX_NOTEBOOK_BYTES if suffix == ".ipynb" else MAX_SOURCE_BYTES
    data = _read_regular(filename, dir_fd, limit)
    if data is None:
        return []  # not a regular file: the files check reports it
    if data is _TOO_LARGE:
        return [Flag("static", f"{relative}: {DYNAMIC}: larger than {limit >> 20} MiB, not scanned")]
    if suffix == ".ipynb":
        try:
            notebook = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return []  # the tamper check reports unreadable notebooks
        if isinstance(notebook, dict) and notebook.get("nbformat") == 3:
            try:
                import nbformat

                notebook = nbformat.reads(data.decode(), as_version=4)
            except Exception:
                return []
        return scan_notebook(notebook, releases.get(filename), name=relative)
    flags = []
    module = Path(filename).stem
    if not relative_dir.parts and module.isidentifier() and _installed_module(module):
        flags.append(Flag("static", f"{relative}: {MONKEYPATCH}: shadows the module {module} "
                                    f"(an `import {module}` in the notebook would load this file)"))
    elif len(relative_dir.parts) == 1 and filename == "__init__.py" and _installed_module(relative_dir.parts[0]):
        flags.append(Flag("static", f"{relative}: {MONKEYPATCH}: the package {relative_dir.parts[0]} "
                                    "shadows the module of that name"))
    return flags + scan_python_source(data.decode("utf-8", errors="replace"), name=relative)


def flag_group(flag: Flag) -> str | None:
    """The group of a static flag's reason (one of GROUPS), or None."""
    for group in GROUPS:
        if f": {group}: " in flag.reason:
            return group
    return None
