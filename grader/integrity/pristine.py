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
    code = getattr(value, "__code__", None) if isinstance(value, types.FunctionType) else None
    if code is not None:
        return not trusted_file(code.co_filename)
    cls = value if isinstance(value, type) else type(value)
    module = type.__dict__["__module__"].__get__(cls)
    return module == "__main__" or (isinstance(module, str) and module not in sys.modules)


def snapshot_modules() -> list[tuple[str, types.ModuleType, dict, tuple]]:
    """(name, module, copy of its namespace, ids of its values) of every module loaded now.

    Taken once in the zygote, before it forks: every child shares it copy-on-write."""
    snapshots = []
    for name, module in list(sys.modules.items()):
        # __main__ is the notebook's own namespace: the student's to change.
        if isinstance(module, types.ModuleType) and name != "__main__":
            namespace = dict(module.__dict__)
            snapshots.append((name, module, namespace, tuple(map(id, namespace.values()))))
    return snapshots


class Pristine:
    def __init__(self, shell, trusted_file, modules: list):
        self.shell = shell
        self.trusted_file = trusted_file
        self.modules = [(name, module, namespace) for name, module, namespace, _ in modules]
        self._ids = [ids for *_, ids in modules]
        self.sys_modules = {name: module for name, module, _ in self.modules}
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
        for name, module in self.sys_modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                reasons.append(f"sys.modules[{name!r}] was replaced; restored")

    def _restore_modules(self, reasons: list[str]) -> None:
        trusted_file = self.trusted_file
        for (name, module, snapshot), ids in zip(self.modules, self._ids):
            current = module.__dict__
            if len(current) == len(snapshot) and tuple(map(id, current.values())) == ids:
                continue  # the common case, checked at C speed
            for key, value in list(current.items()):
                old = snapshot.get(key, _MISSING)
                if old is value or (module is sys and key in _SYS_CHANGED_BY_THE_SHELL):
                    continue
                untrusted = callable(value) and _is_untrusted_definition(value, trusted_file)
                # A library may rebind its own functions (pyplot does on first use); a function
                # swapped for one of another name (np.allclose = np.isclose...) is the student.
                renamed = (
                    not untrusted and old is not _MISSING and callable(old)
                    and getattr(value, "__name__", None) != getattr(old, "__name__", None)
                )
                if untrusted or renamed:
                    if old is _MISSING:
                        del current[key]
                    else:
                        current[key] = old
                    reasons.append(f"{name}.{key} was replaced by student code; restored")
            for key, old in snapshot.items():
                if key not in current and callable(old):
                    current[key] = old
                    reasons.append(f"{name}.{key} was deleted by student code; restored")
