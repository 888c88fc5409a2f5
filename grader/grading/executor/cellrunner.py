"""Execute cells in an in-process IPython shell and record what a Jupyter kernel would have sent.

Outputs come out as nbformat output dicts: ``stream`` (stdout/stderr, consecutive writes merged),
``execute_result``, ``display_data`` and ``error`` — the same shapes and the same IPython
formatting an ipykernel produces, so nbgrader's scoring (error or stderr output scores zero, a
numeric result gives partial credit) reads them exactly as it reads a real kernel's.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config


class OutputLimitExceeded(RuntimeError):
    """Raised into student code when it has written more output than the limit allows."""


class OutputRecorder:
    """Sends each output of the running cell to the grader the moment it exists.

    Nothing is kept here for the grader to collect later: an output, once sent, is out of the
    student's reach (a callback or a thread cannot edit or drop it afterwards). ``send`` writes
    one message on the submission's output channel (see zygote.run_session). The cap counts the
    bytes of the whole submission.
    """

    def __init__(self, cap_bytes: int, send):
        self.cap_bytes = cap_bytes
        self.total_bytes = 0
        self.exceeded = False
        self._send = send

    def _account(self, size: int) -> None:
        self.total_bytes += size
        if self.total_bytes > self.cap_bytes:
            self.exceeded = True
            raise OutputLimitExceeded(f"output limit of {self.cap_bytes} bytes exceeded")

    def stream(self, name: str, text: str) -> None:
        if not text:
            return
        if self.exceeded:
            raise OutputLimitExceeded(f"output limit of {self.cap_bytes} bytes exceeded")
        self._account(len(text.encode(errors="replace")))
        self._send({"output": {"output_type": "stream", "name": name, "text": text}})

    def add(self, output: dict) -> None:
        self._account(sum(len(str(v)) for v in output.get("data", {}).values()))
        self._send({"output": output})

    def clear(self) -> None:
        self._send({"clear": True})


class RecordingStream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` replacement feeding the recorder."""

    def __init__(self, recorder: OutputRecorder, name: str):
        self.recorder = recorder
        self.name = name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.recorder.stream(self.name, text)
        return len(text)

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # a kernel's streams say UTF-8 (IPython prints "μs" only then)
        return "UTF-8"


class RecordingDisplayHook(DisplayHook):
    """Turns a cell's last expression into an ``execute_result`` output."""

    recorder: OutputRecorder | None = None

    def start_displayhook(self):
        self._data, self._metadata = None, None

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        self._data, self._metadata = format_dict, md_dict or {}

    def finish_displayhook(self):
        if self._data:
            self.recorder.add(
                {
                    "output_type": "execute_result",
                    "data": _jsonable(self._data),
                    "metadata": _jsonable(self._metadata),
                    "execution_count": self.prompt_count,
                }
            )


class RecordingDisplayPublisher(DisplayPublisher):
    """Turns ``display(...)`` (and inline matplotlib figures) into ``display_data`` outputs."""

    recorder: OutputRecorder | None = None

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        self.recorder.add({"output_type": "display_data", "data": _jsonable(data), "metadata": _jsonable(metadata or {})})

    def clear_output(self, wait=False):
        self.recorder.clear()


def _jsonable(mimebundle: dict) -> dict:
    """Images arrive as bytes; nbformat stores them base64-encoded, as ipykernel does."""
    import base64

    clean = {}
    for key, value in (mimebundle or {}).items():
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        elif isinstance(value, dict):
            value = _jsonable(value)
        clean[key] = value
    return clean


class RecordingShell(InteractiveShell):
    def enable_gui(self, gui=None):
        """The inline backend needs no GUI event loop (ipykernel's shell does the same)."""

    def _format_exception_for_storage(self, exception, filename=None, running_compiled_code=False):
        """IPython 9 formats every error a second time, for the history it keeps; nothing here
        reads that history, and the formatting (the whole traceback, highlighted) was a quarter
        of a failing submission's time. The error shown as the cell's output is unchanged."""
        return {"ename": type(exception).__name__, "evalue": _safe_str(exception), "traceback": []}


def prepare_shell() -> RecordingShell:
    """Build the IPython shell with the inline matplotlib backend, once, before any fork.

    Called in the zygote so each forked child starts with a ready shell (building one costs
    ~50 ms: IPython's own set-up plus matplotlib's backend registry). Nothing here starts a
    thread (history is off), so forking afterwards is safe; the profile folder is a private
    temporary one, so the grader's home is never written to.
    """
    if RecordingShell.initialized():
        return RecordingShell.instance()
    if "IPYTHONDIR" not in os.environ:  # the zygote is given one inside its own folder
        os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="grader-ipython-")
    config = Config()
    # The history manager would start a saving thread; a kernel's history is not graded anyway.
    config.HistoryManager.enabled = False
    # Libraries choose notebook display (a widget, HTML) over console text (often on stderr, which
    # nbgrader scores zero) by what a kernel looks like: tqdm tests `'IPKernelApp' in
    # get_ipython().config` (older releases) or `'ipykernel.zmqshell' in sys.modules` (newer), others
    # the shell's class name. Look like a kernel to all three.
    config["IPKernelApp"] = Config()
    _import_kernel_shell_module()
    shell = KernelLikeShell.instance(
        config=config,
        displayhook_class=RecordingDisplayHook,
        display_pub_class=RecordingDisplayPublisher,
        colors="linux",  # the kernel's colour scheme, so tracebacks look as they do in JupyterLab
    )
    # Figures appear as display_data, as with the inline backend of a notebook kernel.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    shell.enable_matplotlib("inline")
    _refuse_input_as_a_kernel_does()
    _reuse_traceback_lexer()
    _reuse_traceback_formatter()
    _find_cell_modules_fast()
    _warm_up_tracebacks(shell)
    return shell


class KernelLikeShell(RecordingShell):
    """The shell under the class name an ipykernel's has: ``get_ipython().__class__.__name__ ==
    'ZMQInteractiveShell'`` is the common test for "running in a notebook" (tqdm, rich, plotly,
    students' own helpers), and what it decides can move output between stderr and a display."""


KernelLikeShell.__name__ = KernelLikeShell.__qualname__ = "ZMQInteractiveShell"


def _import_kernel_shell_module() -> None:
    """Import ``ipykernel.zmqshell`` as a kernel process has it imported (tqdm.autonotebook looks for
    it in ``sys.modules``). Importing it starts nothing; without ipykernel installed, nothing to do."""
    try:
        import ipykernel.zmqshell  # noqa: F401
    except ImportError:
        pass


def _refuse_input_as_a_kernel_does() -> None:
    """``input()`` and ``getpass()`` raise what an ipykernel raises when the client allows no stdin
    (nbgrader's never does): ``StdinNotImplementedError``, not ``EOFError`` (which a student's
    ``except EOFError`` would catch and so pass where the kernel fails), and nothing is printed."""
    import builtins
    import getpass

    from IPython.core.error import StdinNotImplementedError

    def raw_input(prompt=""):
        raise StdinNotImplementedError("raw_input was called, but this frontend does not support input requests.")

    def no_getpass(prompt="Password: ", stream=None, **kwargs):
        raise StdinNotImplementedError("getpass was called, but this frontend does not support input requests.")

    builtins.input = raw_input
    getpass.getpass = no_getpass


def kernel_warning_filters(interpreter_defaults: list) -> list:
    """The warning filters a fresh ipykernel's user code runs under, from the interpreter's own.

    ipykernel keeps the interpreter's defaults (``default::DeprecationWarning:__main__``, then
    ``DeprecationWarning``, ``ImportWarning``, ``ResourceWarning``... ignored) and puts in front of
    them the rules its imports add: IPython's completer ``error::ProvisionalCompleterWarning`` and
    ZMQInteractiveShell's Trio rule. (IPython < 9 added its own ``default::DeprecationWarning`` for
    the user namespace's ``__name__``, ``__main__``: the interpreter's first default already.)
    """
    from IPython.core.completer import ProvisionalCompleterWarning

    with warnings.catch_warnings():
        warnings.filters[:] = interpreter_defaults
        # In the order a kernel adds them, each in front of the ones before.
        warnings.filterwarnings("error", category=ProvisionalCompleterWarning)
        warnings.filterwarnings("ignore", message=".*Trio's signal handling code might have collided.*", category=RuntimeWarning)
        return list(warnings.filters)


def apply_warning_filters(filters: list) -> None:
    """Make ``filters`` the warning filters, forgetting which warnings were already shown.

    ``resetwarnings`` bumps the filters' version, which empties every module's ``__warningregistry__``
    at its next warning: what the zygote's imports warned shows again, as in a fresh kernel.
    """
    warnings.resetwarnings()  # no warning can be raised before the next line
    warnings.filters[:] = filters


def _reuse_traceback_lexer() -> None:
    """Make IPython's traceback renderer (stack_data) build its highlighting lexer class once.

    stack_data defines a new pygments lexer *class* for every frame it highlights, and pygments
    compiles a class's grammar at its first use: ~4 ms per frame of every traceback. This does
    the same highlighting with one class, so tracebacks come out byte for byte as before.
    """
    import pygments
    import stack_data.core
    from pygments.lexers import get_lexer_by_name

    class RangeLexer(type(get_lexer_by_name("python3"))):
        """Python tokens, with those inside ``ranges`` (the executing node) marked."""

        def __init__(self, ranges, **options):
            super().__init__(**options)
            self.ranges = ranges

        def get_tokens(self, text):
            offset = 0
            for token_type, value in super().get_tokens(text):
                if any(start <= offset < end for start, end in self.ranges):
                    token_type = token_type.ExecutingNode
                offset += len(value)
                yield token_type, value

    def highlight_with_ranges(formatter, code, ranges):
        try:
            highlighted = pygments.highlight(code, RangeLexer(ranges, stripnl=False), formatter)
        except Exception:  # as stack_data does: plain code rather than no traceback
            highlighted = code
        return highlighted.splitlines()

    stack_data.core._pygmented_with_ranges = highlight_with_ranges


def _reuse_traceback_formatter() -> None:
    """Build the traceback's colour style and its terminal formatter once, not per traceback.

    For every traceback IPython derives a new pygments style class (stack_data's
    ``style_with_executing_node``) and builds a ``Terminal256Formatter`` for it, which maps each
    style entry to the nearest of 256 colours: ~3 ms a traceback, and a broken submission shows
    one per test cell. Both depend only on the theme, so the same objects give the same bytes.
    """
    import functools

    import stack_data
    import stack_data.core
    from pygments.formatters import terminal256

    styled = functools.lru_cache(maxsize=8)(stack_data.core.style_with_executing_node)
    stack_data.style_with_executing_node = stack_data.core.style_with_executing_node = styled

    class OncePerStyle(terminal256.Terminal256Formatter):
        """The formatter, made once per style when the style is its only option."""

        made: dict = {}

        def __new__(cls, **options):
            if set(options) == {"style"} and options["style"] in cls.made:
                return cls.made[options["style"]]
            return super().__new__(cls)

        def __init__(self, **options):
            if getattr(self, "ready", False):
                return  # a formatter from `made`: already set up for this style
            super().__init__(**options)
            self.ready = True
            if set(options) == {"style"}:
                type(self).made[options["style"]] = self

    # ultratb imports the name from the module at each traceback, so it finds this one.
    terminal256.Terminal256Formatter = OncePerStyle


def _find_cell_modules_fast() -> None:
    """Answer ``inspect.getmodule`` for a notebook cell's frame without scanning every module.

    IPython's traceback asks for the module of each frame up to three times; for a frame of a
    cell (``<ipython-input-N-...>``), which no module's file is, ``inspect`` scans the whole of
    ``sys.modules`` every time (thousands of modules once torch is imported: ~1 ms a scan) before
    answering None. Frames, code objects and tracebacks have no ``__name__``, so None is what
    the scan ends in: this answers it directly and leaves every other question to ``inspect``.
    """
    import inspect
    import types

    original = inspect.getmodule

    def getmodule(object, _filename=None):
        code = None
        if isinstance(object, types.FrameType):
            code = object.f_code
        elif isinstance(object, types.TracebackType):
            code = object.tb_frame.f_code
        elif isinstance(object, types.CodeType):
            code = object
        if code is not None and code.co_filename.startswith("<ipython-input-") and _filename in (None, code.co_filename):
            return None
        return original(object, _filename)

    inspect.getmodule = getmodule


def _warm_up_tracebacks(shell: RecordingShell) -> None:
    """Format one traceback before forking, as the first failing cell of every child would.

    The first traceback in a process pays for compiling the syntax-highlighting lexer and
    traceback machinery (~15 ms); done once here, every child inherits it. The cell is not stored
    in history, so ``execution_count`` is unchanged, and its traceback goes nowhere.
    """
    show = shell._showtraceback
    shell._showtraceback = lambda etype, evalue, stb: None
    try:
        shell.run_cell("def _grader_warm_up():\n    return 1 / 0\n_grader_warm_up()", store_history=False)
        shell.run_cell("del _grader_warm_up", store_history=False)
    finally:
        shell._showtraceback = show


class OutputCapture:
    """What C code writes to file descriptors 1 and 2, forwarded into the notebook as ipykernel does.

    The descriptors point at files in a folder only the grader can open (made before the process
    drops root); read handles are kept, so the submission's process can drain them itself.
    """

    def __init__(self, directory: str):
        self.handles = {}
        for fd, name in ((1, "stdout"), (2, "stderr")):
            path = os.path.join(directory, f"fd{fd}.log")
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
            self.handles[name] = os.open(path, os.O_RDONLY)

    def drain(self, recorder: OutputRecorder) -> None:
        for name, handle in self.handles.items():
            data = b""
            while chunk := os.read(handle, 1 << 20):
                data += chunk
            if data:
                recorder.stream(name, data.decode(errors="replace"))


class CellRunner:
    """One IPython shell for one submission; ``run(code)`` runs a cell, its outputs go to ``send``."""

    # Classes whose attributes __init__ sets (besides sys's streams), for the snapshot to retake.
    installs = (RecordingDisplayHook, RecordingDisplayPublisher)

    def __init__(self, *, output_cap_bytes: int, send, capture: OutputCapture):
        self.recorder = OutputRecorder(output_cap_bytes, send)
        RecordingDisplayHook.recorder = self.recorder
        RecordingDisplayPublisher.recorder = self.recorder
        self.shell = prepare_shell()
        self.shell._showtraceback = self._record_traceback
        sys.stdout = RecordingStream(self.recorder, "stdout")
        sys.stderr = RecordingStream(self.recorder, "stderr")
        self.capture = capture

    def _record_traceback(self, etype, evalue, stb):
        # Past the output cap too: the error is what scores the cell.
        self.recorder._send({"output": {"output_type": "error", "ename": str(etype.__name__), "evalue": str(evalue), "traceback": stb}})

    def run(self, code: str) -> tuple[int | None, dict | None]:
        """Run one cell; return its execution_count and, if it failed, the error as IPython saw it
        ({"ename", "evalue"}): the grader checks that an error output was really shown."""
        error = None
        try:
            result = self.shell.run_cell(code, store_history=True)
            count = result.execution_count
            failure = result.error_before_exec or result.error_in_exec
            if failure is not None:
                error = {"ename": type(failure).__name__, "evalue": _safe_str(failure)}
        except OutputLimitExceeded:
            count = self.shell.execution_count
        try:
            self.capture.drain(self.recorder)
        except OutputLimitExceeded:
            pass
        return count, error


def _safe_str(value) -> str:
    try:
        return str(value)
    except Exception:  # a student's exception whose __str__ fails
        return "<unprintable>"
