"""Put the grader's machinery back as it was before each instructor cell runs, and say what changed.

Student cells run in the same interpreter as the test cells that judge them, so anything they
leave behind could change the verdict: a callback on the shell's events, an input or AST
transformer that wraps later cells in ``try/except``, a custom exception handler, a replaced
``showtraceback`` or ``run_cell``, a library function swapped for one that always agrees
(``np.allclose = lambda *a, **k: True``), a module name rebound in the notebook's namespace.
:class:`Pristine` takes references before any student code runs; :meth:`Pristine.restore`, called
before each instructor cell, puts every changed one back and returns a reason per change (each
becomes a flag). Comparisons are by identity only: comparing with ``==`` would call the
student's own ``__eq__``.
"""

from __future__ import annotations

import sys
import types
import warnings
from dataclasses import dataclass
from itertools import chain
from operator import is_

_MISSING = object()
# What the interpreter and IPython themselves set in sys while running cells (the last error
# shown; the streams and hooks are checked on their own in _restore_sys).
_SYS_CHANGED_BY_THE_SHELL = {
    "last_type", "last_value", "last_traceback", "last_exc", "stdout", "stderr", "stdin",
    "displayhook", "excepthook", "breakpointhook", "ps1", "ps2",
}
# Instance attributes of the shell whose replacement changes how a cell runs or is reported.
SHELL_ATTRIBUTES = (
    "events", "displayhook", "display_pub", "display_trap", "builtin_trap", "compile",
    "input_transformer_manager", "input_transformers_cleanup", "input_transformers_post",
    "custom_exceptions", "CustomTB", "InteractiveTB", "SyntaxTB", "_showtraceback", "hooks",
    "user_ns", "user_global_ns", "user_module", "ast_transformers",
)


def _is_untrusted_definition(value, trusted_file) -> bool:
    """Whether ``value`` is a function or class (or an instance of a class) the student defined."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    elif isinstance(value, property):
        value = value.fget
    code = value.__code__ if isinstance(value, types.FunctionType) else None
    if code is not None:
        return not trusted_file(code.co_filename)
    cls = value if isinstance(value, type) else type(value)
    module = type.__dict__["__module__"].__get__(cls)
    return module == "__main__" or (isinstance(module, str) and module not in sys.modules)


# Watched always, whatever the assignment imports: the interpreter, the shell that runs the
# cells, this package's runner, and what tests are commonly written with.
WATCHED_PACKAGES = ("IPython", "grader", "traitlets", "unittest")
WATCHED_MODULES = ("builtins", "sys", "math", "cmath", "operator", "functools", "numbers", "warnings",
                   "traceback", "linecache", "types", "decimal", "fractions", "random", "re", "json")
_VOLATILE = (sys, warnings)
_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: built-in classes nobody can change


class _DictVersions:
    """Whether a dict changed, read from CPython's per-dict version tag (PEP 509's
    ``ma_version_tag``, bumped by every insertion, replacement and deletion).

    Comparing a namespace value by value touches every value (a reference count written), and in
    a forked child a touched object is a page copied: the first check of ~24,000 watched values
    cost ~13 ms per submission. The tag is read from the dict object alone, values untouched. The
    readers are made in the zygote, before any student code and before the audit hook; reading
    one raises no audit event. Where the layout is not the expected one (another Python), the
    self-check below fails and every check is made value by value, as before.
    """

    def __init__(self):
        self.readers = None
        try:
            import ctypes

            offset = 2 * ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_ssize_t)  # ob_refcnt, ob_type, ma_used
            self._ctypes, self._offset = ctypes, offset
            probe = {}
            reader = self.reader(probe)
            before = reader.value
            probe["x"] = 1
            after_insert = reader.value
            probe["x"] = 2
            if sys.implementation.name == "cpython" and before != after_insert and reader.value != after_insert:
                self.readers = True
        except Exception:  # noqa: BLE001 - any surprise: the value-by-value checks stay
            self.readers = None

    def reader(self, mapping: dict):
        return self._ctypes.c_uint64.from_address(id(mapping) + self._offset)

    @property
    def usable(self) -> bool:
        return self.readers is not None


_VERSIONS = _DictVersions()


def _real_dict(owner) -> dict | None:
    """The dict behind a module's or a class's namespace (a class shows it through a read-only proxy)."""
    if isinstance(owner, types.ModuleType):
        return vars(owner)
    import gc

    found = [ref for ref in gc.get_referents(vars(owner)) if type(ref) is dict]
    return found[0] if len(found) == 1 else None


@dataclass
class _Namespace:
    label: str  # "numpy" or "class torch.Tensor"
    owner: object  # the module or class
    snapshot: dict
    version: object = None  # a reader of the namespace dict's version tag (_DictVersions), or None
    seen: int = -1  # the tag when ``snapshot`` was taken

    def remember_version(self) -> None:
        if self.version is not None:
            self.seen = self.version.value

    def unchanged_since_snapshot(self) -> bool:
        return self.version is not None and self.version.value == self.seen


@dataclass
class NamespaceSnapshot:
    entries: list

    def __post_init__(self):
        # ``sys`` changes with every error the shell shows (sys.last_value...), ``warnings`` when a
        # cell first warns (showwarning): they are checked name by name every time, so that one
        # failing cell does not send every other namespace down the slow path.
        volatile = {id(owner) for owner in _VOLATILE}
        self.steady = [entry for entry in self.entries if id(entry.owner) not in volatile]
        self.volatile = [entry for entry in self.entries if id(entry.owner) in volatile]
        if _VERSIONS.usable:
            for entry in self.entries:
                mapping = _real_dict(entry.owner)
                entry.version = _VERSIONS.reader(mapping) if mapping is not None else None
                entry.remember_version()
        self.by_version = _VERSIONS.usable and all(entry.version is not None for entry in self.steady)

    def refresh(self, owners) -> None:
        """Take these namespaces again: what the child's own set-up changed in them (the streams
        and the display hooks it installs, the warning filters) is the starting point, not a
        change to find by scanning every namespace before the first instructor cell."""
        for entry in self.entries:
            if any(entry.owner is owner for owner in owners):
                entry.snapshot = dict(vars(entry.owner))
                entry.remember_version()

    def unchanged(self) -> bool:
        """Whether every watched namespace but the volatile ones still holds the very same objects, at C speed.

        Identity only, through ``operator.is_``: ``==`` would run a student's ``__eq__``, and
        ``id()`` raises an audit event per call (the audit hook would run 20,000 times). Where
        the dicts' version tags can be read, they answer without touching a value."""
        if self.by_version:
            return all(entry.unchanged_since_snapshot() for entry in self.steady)
        owners = [entry.owner.__dict__ for entry in self.steady]
        if list(map(len, owners)) != [len(entry.snapshot) for entry in self.steady]:
            return False
        return all(map(is_, chain.from_iterable(map(_values, owners)),
                       chain.from_iterable(_values(entry.snapshot) for entry in self.steady)))


def _values(mapping):
    return mapping.values()


def _same_objects(current, snapshot: dict) -> bool:
    return len(current) == len(snapshot) and all(map(is_, current.values(), snapshot.values()))


def snapshot_namespaces(roots: list[str]) -> NamespaceSnapshot:
    """The namespaces a verdict can depend on, taken once in the zygote before it forks (every
    child shares them copy-on-write): the modules the assignment imports (``roots``, from its
    source notebooks) and their submodules one level down (``numpy.testing``, ``torch.nn``), the
    interpreter's and the shell's (WATCHED_*), the classes those modules define or expose at top
    level (``torch.Tensor``), and the classes of the shell that runs the cells.

    Every value checked is an object touched in a forked child, and a touched object is a page
    copied: watching all of torch and TensorFlow (~340,000 values) would cost ~60 ms per check and
    far more on first touch, so the set is what tests call and what runs the cells.
    """
    roots = {name for name in roots}
    chosen: dict[str, types.ModuleType] = {}
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or name == "__main__":
            continue  # __main__ is the notebook's own namespace: the student's to change
        if name in roots or name in WATCHED_MODULES or name.split(".")[0] in WATCHED_PACKAGES:
            chosen[name] = module
    for root in list(roots):
        module = sys.modules.get(root)
        if isinstance(module, types.ModuleType):
            for value in list(vars(module).values()):
                if isinstance(value, types.ModuleType) and value.__name__.startswith(root + "."):
                    chosen.setdefault(value.__name__, value)
    entries = [_Namespace(name, module, dict(vars(module))) for name, module in sorted(chosen.items())]
    classes: dict[int, type] = {}
    for name, module in chosen.items():
        top_level = name in roots or name.split(".")[0] in WATCHED_PACKAGES or name in WATCHED_MODULES
        if not top_level:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type) and not value.__flags__ & _IMMUTABLE_TYPE:
                classes.setdefault(id(value), value)
    shell_class = next((type(v) for v in _shell_instances()), None)
    for cls in (shell_class.__mro__ if shell_class else ()):
        if not cls.__flags__ & _IMMUTABLE_TYPE:
            classes.setdefault(id(cls), cls)
    entries += [_Namespace(f"class {cls.__module__}.{cls.__qualname__}", cls, dict(vars(cls))) for cls in classes.values()]
    return NamespaceSnapshot(entries)


def _shell_instances():
    from IPython.core.interactiveshell import InteractiveShell

    return [InteractiveShell.instance()] if InteractiveShell.initialized() else []


class Pristine:
    def __init__(self, shell, trusted_file, namespaces: NamespaceSnapshot):
        self.shell = shell
        self.trusted_file = trusted_file
        self.namespaces = namespaces
        self.sys_modules = {entry.label: entry.owner for entry in namespaces.entries if isinstance(entry.owner, types.ModuleType)}
        self.shell_dict = dict(shell.__dict__)
        self.trait_values = dict(shell._trait_values)
        self.lists = {  # containers changed in place, not replaced
            "events": {name: list(callbacks) for name, callbacks in shell.events.callbacks.items()},
            "input_transformers_cleanup": list(shell.input_transformers_cleanup),
            "input_transformers_post": list(shell.input_transformers_post),
            "ast_transformers": list(shell.ast_transformers),
            "custom_exceptions": shell.custom_exceptions,
        }
        self.sys_hooks = {name: getattr(sys, name) for name in ("displayhook", "excepthook", "stdout", "stderr", "breakpointhook")}
        # Made now, before student code and the audit hook: see _DictVersions.
        self.modules_version = _VERSIONS.reader(sys.modules) if _VERSIONS.usable else None
        self.modules_seen = -1  # the first restore looks at every module
        self.instructor_names: dict[str, object] = {}

    # -- what the instructor's cells bind in the notebook's namespace ----------------------------

    def remember_instructor_names(self, before: dict) -> None:
        """After an instructor cell: remember the modules and instructor-defined functions it bound."""
        namespace = self.shell.user_ns
        for name, value in namespace.items():
            if before.get(name, _MISSING) is value:
                continue
            if isinstance(value, types.ModuleType) or (
                isinstance(value, (types.FunctionType, type)) and not _is_untrusted_definition(value, self.trusted_file)
            ):
                self.instructor_names[name] = value

    # -- restore -------------------------------------------------------------------------------

    def restore(self) -> list[str]:
        reasons: list[str] = []
        self._restore_shell(reasons)
        self._restore_sys(reasons)
        self._restore_modules(reasons)
        namespace = self.shell.user_ns
        for name, value in self.instructor_names.items():
            if namespace.get(name, _MISSING) is not value:
                namespace[name] = value
                reasons.append(f"the name {name!r}, bound by the instructor's cells, was rebound by student code; restored")
        return reasons

    def _restore_shell(self, reasons: list[str]) -> None:
        shell = self.shell
        current = shell.__dict__
        for name in SHELL_ATTRIBUTES:
            old = self.shell_dict.get(name, _MISSING)
            if old is not _MISSING and current.get(name, _MISSING) is not old:
                current[name] = old
                reasons.append(f"the shell's {name} was replaced; restored")
        for name in [key for key in current if key not in self.shell_dict]:
            if callable(getattr(type(shell), name, None)):
                del current[name]
                reasons.append(f"the shell's method {name} was overridden; restored")
        traits = shell._trait_values
        for name in ("ast_transformers", "display_formatter", "displayhook_class"):
            old = self.trait_values.get(name, _MISSING)
            if old is not _MISSING and traits.get(name, _MISSING) is not old:
                traits[name] = old
                reasons.append(f"the shell's {name} was replaced; restored")
        callbacks = shell.events.callbacks
        for event, original in self.lists["events"].items():
            if list(map(id, callbacks.get(event, []))) != list(map(id, original)):
                callbacks[event][:] = original
                reasons.append(f"a callback was registered on the shell's {event!r} event; removed")
        for name in ("input_transformers_cleanup", "input_transformers_post", "ast_transformers"):
            container = getattr(shell, name)
            if list(map(id, container)) != list(map(id, self.lists[name])):
                container[:] = self.lists[name]
                reasons.append(f"the shell's {name} were changed; restored")
        if shell.custom_exceptions is not self.lists["custom_exceptions"] or shell.custom_exceptions:
            shell.custom_exceptions = self.lists["custom_exceptions"]
            shell.CustomTB = self.shell_dict.get("CustomTB", shell.CustomTB)
            reasons.append("a custom exception handler was set (set_custom_exc); removed")

    def _restore_sys(self, reasons: list[str]) -> None:
        for name, old in self.sys_hooks.items():
            if getattr(sys, name) is not old:
                setattr(sys, name, old)
                reasons.append(f"sys.{name} was replaced; restored")
        if sys.gettrace() is not None or sys.getprofile() is not None:
            sys.settrace(None)
            sys.setprofile(None)
            reasons.append("a trace or profile function was set; removed")
        if self.modules_version is not None and self.modules_version.value == self.modules_seen:
            return  # sys.modules not changed since it was last found right
        for name, module in self.sys_modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                reasons.append(f"sys.modules[{name!r}] was replaced; restored")
        if self.modules_version is not None:
            self.modules_seen = self.modules_version.value

    def settle(self) -> list[str]:
        """After an instructor cell: what it changed becomes the new normal (a setup cell may well
        set ``warnings.showwarning``), except values defined by student code it called, which are
        put back at once."""
        reasons: list[str] = []
        self._restore_modules(reasons, strict=False)
        return reasons

    def _restore_modules(self, reasons: list[str], strict: bool = True) -> None:
        namespaces = self.namespaces
        # The common case: nothing but sys changed, checked at C speed; sys (a hundred names)
        # is always looked at name by name.
        entries = namespaces.volatile if namespaces.unchanged() else namespaces.entries
        trusted_file = self.trusted_file
        for entry in entries:
            if entry.unchanged_since_snapshot():
                continue
            current = entry.owner.__dict__
            if _same_objects(current, entry.snapshot):
                entry.remember_version()
                continue
            is_module = isinstance(entry.owner, types.ModuleType)
            snapshot = entry.snapshot
            for key, value in list(current.items()):
                old = snapshot.get(key, _MISSING)
                if old is value or (entry.owner is sys and key in _SYS_CHANGED_BY_THE_SHELL):
                    continue
                untrusted = _is_untrusted_definition(value, trusted_file)
                # A library may rebind its own functions (pyplot does on first use), and an
                # instructor's cell may install its own (a setup cell's warnings.showwarning); a
                # function swapped for a library one of another name (np.allclose = np.isclose...)
                # is the student.
                renamed = strict and (
                    not untrusted and old is not _MISSING and callable(old)
                    and getattr(value, "__name__", None) != getattr(old, "__name__", None)
                    and not _defined_in_a_cell(value)
                )
                if untrusted or renamed:
                    _put_back(entry.owner, key, old, is_module)
                    reasons.append(f"{entry.label}.{key} was replaced by student code; restored")
            for key, old in snapshot.items():
                if strict and key not in current and callable(old):
                    _put_back(entry.owner, key, old, is_module)
                    reasons.append(f"{entry.label}.{key} was deleted by student code; restored")
            # What is left changed is the libraries' own doing (a cache, a lazy import): the new normal.
            entry.snapshot = dict(current)
            entry.remember_version()


def _defined_in_a_cell(value) -> bool:
    """A function compiled from a notebook cell (whether that cell is trusted is decided apart)."""
    return isinstance(value, types.FunctionType) and value.__code__.co_filename.startswith("<ipython-input-")


def _put_back(owner, key, old, is_module: bool) -> None:
    if is_module:
        if old is _MISSING:
            owner.__dict__.pop(key, None)
        else:
            owner.__dict__[key] = old
    elif old is _MISSING:
        delattr(owner, key)
    else:
        setattr(owner, key, old)
