"""A PEP 578 audit hook, installed in the submission's process before any student code runs.

Audit hooks cannot be removed once added, and CPython raises an audit event for the operations a
submission would use to reach into the grader's machinery from inside its own process: tracing
(``sys.settrace``/``setprofile``), frame access (``sys._getframe``, a traceback's ``tb_frame``,
a generator's ``gi_frame``), heap walking (``gc.get_objects``/``get_referrers``), raw memory
(``ctypes``), changing a class or a function of a library (``object.__setattr__``), sockets,
processes, and opening ``/proc`` or a raw file descriptor.

Each event is judged by *who* caused it: the Python frames on the stack are either trusted (the
standard library, installed packages, this package, and the cells the instructor wrote) or not
(cells the student wrote, code they ``exec``, modules they shipped). Honest libraries called by
honest code keep working; the same operation requested by student code is

- **refused** (``PermissionError`` raised into the student's code) for the operations that only
  serve to tamper with the grader — and reported as a flag, or
- **recorded** as a flag for the ones honest code might do (a socket: the network namespace
  already stops it; a subprocess; ``sys._getframe``).

Flags go to the grader through ``report`` as they happen, so nothing the student runs later can
take them back. The hook never calls a method of an object it is given (that would run student
code inside the hook); it looks only at types, strings and integers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

# Refused when any untrusted frame is on the stack: only tampering needs these.
REFUSED_ANYWHERE = {
    "sys.settrace": "tracing (sys.settrace) can skip or rewrite the grader's test code",
    "sys.setprofile": "profiling hooks (sys.setprofile) can watch and alter the grader's calls",
    "sys._current_frames": "reading other threads' frames reaches the grader's state",
    "sys.addaudithook": "adding an audit hook",
    "gc.get_objects": "walking the heap (gc.get_objects) reaches the grader's objects",
    "gc.get_referrers": "walking the heap (gc.get_referrers) reaches the grader's objects",
    "gc.get_referents": "walking the heap (gc.get_referents) reaches the grader's objects",
    "ctypes.dlopen": "loading a C library with ctypes (raw memory access)",
    "ctypes.dlsym": "looking up a C symbol with ctypes (raw memory access)",
    "ctypes.cdata": "reading raw memory with ctypes",
    "ctypes.string_at": "reading raw memory with ctypes",
    "ctypes.wstring_at": "reading raw memory with ctypes",
    "ctypes.addressof": "taking a raw address with ctypes",
    "ctypes.call_function": "calling a C function through ctypes",
    "ctypes.set_errno": "ctypes",
    "ctypes.get_errno": "ctypes",
}
# Refused when the operation is requested directly by untrusted code.
REFUSED_DIRECT = {
    "object.__getattr__": "reading a frame from a traceback or generator (frame walking)",
}
# Recorded (not refused) when requested directly by untrusted code.
RECORDED_DIRECT = {
    "sys._getframe": "frame access (sys._getframe)",
    "socket.__new__": "opening a socket",
    "socket.connect": "connecting a socket",
    "socket.bind": "binding a socket",
    "socket.sendto": "sending a datagram",
    "socket.getaddrinfo": "looking up a host name",
    "os.system": "running a shell command",
    "subprocess.Popen": "starting a program",
    "os.exec": "replacing the process with a program",
    "os.posix_spawn": "starting a program",
    "os.spawn": "starting a program",
    "os.fork": "forking the process",
    "os.kill": "signalling a process",
    "os.killpg": "signalling a process group",
    "code.__new__": "building a code object by hand",
    "function.__new__": "building a function by hand",
    "exec": "running code built at run time (exec/eval)",
    "marshal.loads": "loading marshalled code",
    "pickle.find_class": "unpickling (can run arbitrary code)",
}
WATCHED = set(REFUSED_ANYWHERE) | set(REFUSED_DIRECT) | set(RECORDED_DIRECT) | {"open", "object.__setattr__", "object.__delattr__", "compile"}
_FRAME_ATTRIBUTES = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"}
CELL_PREFIX = "<ipython-input-"


class Trust:
    """Which code is the instructor's or the platform's: installed files and instructor cells."""

    def __init__(self, trusted_roots: list[str]):
        self.roots = tuple(root.rstrip("/") + "/" for root in trusted_roots)
        self.cells: set[int] = set()  # execution counts of instructor-written cells

    def trusted_file(self, filename: str) -> bool:
        if filename.startswith(CELL_PREFIX):
            try:
                return int(filename[len(CELL_PREFIX):].split("-", 1)[0]) in self.cells
            except ValueError:
                return False
        return filename.startswith(self.roots) or filename.startswith("<frozen ")


def install(trust: Trust, report: Callable[[str], None]) -> None:
    """Install the hook for this process (irreversible). ``report(reason)`` gets each flag once."""
    getframe = sys._getframe
    busy = [False]
    reported: set[str] = set()

    def untrusted_location(frame, anywhere: bool) -> str | None:
        while frame is not None:
            code = frame.f_code
            if not trust.trusted_file(code.co_filename):
                return f"{_cell_name(code.co_filename)} line {frame.f_lineno}"
            if not anywhere:
                return None
            frame = frame.f_back
        return None

    def flag(reason: str, where: str) -> None:
        text = f"{reason} ({where})"
        if text not in reported:
            reported.add(text)
            report(text)

    def hook(event: str, args: tuple) -> None:
        if event not in WATCHED or busy[0]:
            return
        busy[0] = True
        try:
            caller = getframe(1)
            if event in REFUSED_ANYWHERE:
                where = untrusted_location(caller, anywhere=True)
                if where:
                    flag(f"refused: {REFUSED_ANYWHERE[event]}", where)
                    raise PermissionError(f"not allowed while grading: {REFUSED_ANYWHERE[event]}")
                return
            if event == "sys._getframe":
                _judge_frame_access(caller)
                return
            if event == "object.__getattr__":
                if len(args) == 2 and type(args[1]) is str and args[1] in _FRAME_ATTRIBUTES:
                    where = untrusted_location(caller, anywhere=False)
                    if where:
                        flag(f"refused: {REFUSED_DIRECT[event]}", where)
                        raise PermissionError(f"not allowed while grading: {REFUSED_DIRECT[event]}")
                return
            if event in ("object.__setattr__", "object.__delattr__"):
                _judge_setattr(args, caller)
                return
            if event == "open":
                _judge_open(args, caller)
                return
            if event == "compile":
                if len(args) >= 2 and type(args[1]) is str and args[1].startswith(CELL_PREFIX):
                    where = untrusted_location(caller, anywhere=False)
                    if where:
                        flag("refused: compiling code under a notebook cell's name", where)
                        raise PermissionError("not allowed while grading: compiling code under a cell's name")
                return
            where = untrusted_location(caller, anywhere=False)
            if where:
                flag(f"recorded: {RECORDED_DIRECT[event]}", where)
        finally:
            busy[0] = False

    def _judge_setattr(args: tuple, caller) -> None:
        if len(args) < 2:
            return
        target, name = args[0], args[1]
        kind = type(target)
        if issubclass(kind, type):
            defined_in = _type_module(target)
        elif kind.__name__ in ("function", "builtin_function_or_method"):
            defined_in = getattr_static_module(target)
        else:
            return
        if defined_in is None or defined_in == "__main__":
            return  # the student's own class or function
        where = untrusted_location(caller, anywhere=False)
        if where:
            what = f"changing {defined_in}.{getattr_static_name(target)}.{name if type(name) is str else '?'}"
            flag(f"refused: {what} (patching a library)", where)
            raise PermissionError(f"not allowed while grading: {what}")

    def _judge_frame_access(caller) -> None:
        """Frames seen from student code called by an instructor cell show the test itself (its
        source, its expected values): refused when student code asks for them directly."""
        frame, direct, student_frame, instructor_below = caller, True, None, False
        while frame is not None:
            filename = frame.f_code.co_filename
            if student_frame is None and not trust.trusted_file(filename):
                student_frame = frame
            elif student_frame is not None and filename.startswith(CELL_PREFIX) and trust.trusted_file(filename):
                instructor_below = True
                break
            if student_frame is None:
                direct = False
            frame = frame.f_back
        if student_frame is None:
            return
        where = f"{_cell_name(student_frame.f_code.co_filename)} line {student_frame.f_lineno}"
        if instructor_below and direct:
            flag("refused: reading the calling test's frame (sys._getframe) from code a test called", where)
            raise PermissionError("not allowed while grading: reading the frames of the test that called this code")
        if direct:
            flag(f"recorded: {RECORDED_DIRECT['sys._getframe']}", where)
        # Through a library (traceback.extract_stack, inspect.stack, and torch or pandas internals
        # that honest code reaches): not judged here, the static scan names the library calls.

    def _judge_open(args: tuple, caller) -> None:
        path = args[0] if args else None
        if type(path) is int:
            reason = "opening a raw file descriptor"
        elif type(path) in (str, bytes):
            text = path.decode(errors="replace") if type(path) is bytes else path
            if not (text.startswith("/proc/") or text == "/proc"):
                return
            reason = f"reading {text}"
        else:
            return
        where = untrusted_location(caller, anywhere=False)
        if where:
            flag(f"refused: {reason}", where)
            raise PermissionError(f"not allowed while grading: {reason}")

    sys.addaudithook(hook)


def _type_module(cls) -> str | None:
    module = type.__dict__["__module__"].__get__(cls)
    return module if type(module) is str else None


def getattr_static_module(function) -> str | None:
    module = getattr(function, "__module__", None)  # functions and builtins: a plain attribute
    return module if type(module) is str else None


def getattr_static_name(target) -> str:
    name = type.__dict__["__name__"].__get__(target) if issubclass(type(target), type) else getattr(target, "__name__", "?")
    return name if type(name) is str else "?"


def _cell_name(filename: str) -> str:
    if filename.startswith(CELL_PREFIX):
        return f"cell run {filename[len(CELL_PREFIX):].split('-', 1)[0]}"
    return filename
