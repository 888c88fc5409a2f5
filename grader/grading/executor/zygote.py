"""The pre-importing forking server: ``python -m grader.grading.executor.zygote [--pid-namespaces] SOCKET MODULE...``.

It imports the given modules once, then forks one child per connection. It never runs framework
operations itself: forking after thread pools have started (a first torch or tensorflow op) risks
deadlocks in the child, forking after mere imports does not.
"""

from __future__ import annotations

import base64
import ctypes
import faulthandler
import gc
import importlib
import os
import signal
import socket
import socketserver
import sys
import tempfile
import traceback
import warnings

from grader.grading.executor import rootfs
from grader.grading.executor.protocol import ConnectionClosed, recv_message, send_message
from grader.grading.executor.sandbox import PidNamespacePerChild, SandboxSpec, confine, keep_only_descriptors
from grader.grading.integrity import audit
from grader.grading.integrity.pristine import Pristine, snapshot_namespaces


class CellTimeout(KeyboardInterrupt):
    """Raised into a cell that runs past the per-cell timeout, as a kernel interrupt would be."""


_ALARMS = []  # set when the per-cell timeout fired in the cell now running (checked by run_session)


def _on_alarm(signum, frame):
    _ALARMS.append(True)
    raise CellTimeout()


def _keep_descendants() -> None:
    """Become a child subreaper: orphaned descendants are re-parented to us, not to init, so the
    grader finds (and ends) every process the submission started by walking our process tree."""
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL us when our parent dies, so a killed grader leaves nothing behind."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _write_files(directory: str, files: dict[str, str]) -> None:
    for relative, content in files.items():
        target = os.path.normpath(os.path.join(directory, relative))
        if not target.startswith(directory + os.sep):
            continue  # a path escaping the scratch directory is never written
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(base64.b64decode(content))


# The only variables student code sees, whatever the grader's environment holds (tokens,
# passwords and keys never reach it). The zygote itself is started with only these too.
ENVIRONMENT_ALLOW_LIST = (
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "NBGRADER_EXECUTION", "MPLBACKEND", "PYTHONHASHSEED",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES",
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
    "GRADER_TEST_TAG",  # a random marker the tests use to find the processes they started; no secret
)


def allowed_environment(environ: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in environ.items() if key in ENVIRONMENT_ALLOW_LIST}


def _output_sender(fd: int):
    """A function writing one framed message on the output channel (threads may share it)."""
    import json
    import struct
    import threading

    lock = threading.Lock()
    header = struct.Struct("!Q")

    def send(message: dict) -> None:
        payload = json.dumps(message).encode()
        data = memoryview(header.pack(len(payload)) + payload)
        with lock:
            while data:
                data = data[os.write(fd, data):]

    return send


def run_session(conn: socket.socket) -> None:
    """Child side: set up, confine, then execute cells one by one until told to stop.

    Two channels lead to the grader. Outputs and flags go, as they happen, on a pipe whose write
    end the grader passes with the start message. Commands and each cell's end ("result", carrying
    the nonce the grader sent with the cell) go on the connection, which lives only in this
    function's frame at a random descriptor number: student code can add outputs, never end a
    cell early or take an output back (docs/grading-security.md).
    """
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote ignores it; student code must not
    start = recv_message(conn)
    _, fds, _, _ = socket.recv_fds(conn, 1, 1)
    output_fd = fds[0]
    os.setsid()  # our own process group: the grader kills it, and whatever it spawned, as one
    _die_with_parent()
    conn, output_fd = keep_only_descriptors(conn, output_fd)
    send_output = _output_sender(output_fd)
    scratch = start["scratch"]
    work, logs = os.path.join(scratch, "work"), os.path.join(scratch, "logs")
    os.makedirs(work, exist_ok=True)
    os.makedirs(logs, mode=0o700, exist_ok=True)
    _write_files(work, start.get("files", {}))
    from grader.grading.executor.cellrunner import (  # imported in the zygote already; cheap
        CellRunner,
        OutputCapture,
        apply_warning_filters,
    )

    capture = OutputCapture(logs)
    faulthandler.enable(file=2)  # fd 2 is the capture file now: a segfault leaves a reason there
    confined = confine(SandboxSpec(**start["sandbox"]), scratch)
    # Die with the zygote (set after confine: changing user clears the setting).
    _die_with_parent()
    _keep_descendants()
    os.chdir(confined["workdir"])
    environment = {**allowed_environment(dict(os.environ)), **allowed_environment(start.get("env", {}))}
    os.environ.clear()
    os.environ.update(environment)
    os.environ["HOME"] = confined["workdir"]
    os.environ["IPYTHONDIR"] = os.path.join(tempfile.gettempdir(), ".ipython")
    # A fresh kernel's warning filters, with no warning remembered as shown: what the zygote's
    # imports warned shows again, and what a kernel hides (ResourceWarning...) stays hidden.
    apply_warning_filters(_KERNEL_WARNING_FILTERS)

    runner = CellRunner(output_cap_bytes=start["output_cap_bytes"], send=send_output, capture=capture)
    _NAMESPACES.refresh([sys, warnings, *CellRunner.installs])
    trust = audit.Trust(rootfs.python_paths())
    pristine = Pristine(runner.shell, trust.trusted_file, _NAMESPACES)

    def report(reason: str) -> None:
        send_output({"flag": reason})

    audit.install(trust, report)
    signal.signal(signal.SIGALRM, _on_alarm)
    my_pid = os.getpid()
    send_message(conn, {"type": "ready", "pid": confined["pid"], "pgid": confined["pgid"],
                        "isolated": confined["isolated"], "fd": conn.fileno()})
    while True:
        message = recv_message(conn)
        if message["type"] != "execute":
            break
        trusted = message.get("trusted", False)
        if trusted:
            for reason in pristine.restore():
                report(f"before an instructor cell: {reason}")
            trust.cells.add(runner.shell.execution_count)
            names_before = dict(runner.shell.user_ns)
        _ALARMS.clear()
        signal.setitimer(signal.ITIMER_REAL, message["timeout"])
        try:
            count, error = runner.run(message["code"])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if os.getpid() != my_pid:
            os._exit(0)  # a process the student forked must never answer for the submission
        if trusted:
            pristine.remember_instructor_names(names_before)
        send_message(conn, {"type": "result", "nonce": message["nonce"], "execution_count": count,
                            "output_exceeded": runner.recorder.exceeded, "error": error, "timed_out": bool(_ALARMS)})


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            run_session(self.request)
        except ConnectionClosed:
            pass
        except BaseException:
            # The grader sees the connection close and records the submission as failed; the
            # traceback goes to the zygote's stderr for the instructor's log.
            traceback.print_exc(file=sys.__stderr__)
        finally:
            os._exit(0)  # skip atexit handlers and buffered writes inherited from the zygote


class ZygoteServer(socketserver.ForkingMixIn, socketserver.UnixStreamServer):
    max_children = 4096
    block_on_close = False
    pid_namespaces: PidNamespacePerChild | None = None  # set when the grader isolates (as root)

    def process_request(self, request, client_address):
        if self.pid_namespaces is None:
            return super().process_request(request, client_address)
        # The child is forked straight into a PID namespace of its own (sandbox.PidNamespacePerChild);
        # it never returns here (ForkingMixIn ends it with os._exit).
        self.pid_namespaces.before_fork()
        try:
            return super().process_request(request, client_address)
        finally:
            self.pid_namespaces.after_fork()


_KERNEL_WARNING_FILTERS: list = []  # set by preload: what each submission starts with
_NAMESPACES = None  # set by preload: the namespaces a verdict depends on, before student code


def preload(modules: list[str]) -> None:
    interpreter_defaults = list(warnings.filters)  # before any import adds its own rules
    warnings.filterwarnings("ignore")
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:  # a missing optional library must not stop grading
            print(f"zygote: could not preload {name}: {error}", file=sys.stderr)
    from grader.grading.executor.cellrunner import apply_warning_filters, kernel_warning_filters, prepare_shell

    prepare_shell()
    _KERNEL_WARNING_FILTERS[:] = kernel_warning_filters(interpreter_defaults)
    apply_warning_filters(_KERNEL_WARNING_FILTERS)
    # Every object so far is shared with the children copy-on-write. Moving them out of the
    # garbage collector's reach keeps a child's first full collection from touching (and so
    # copying) every page of the pre-imported heap: tens of milliseconds per submission.
    global _NAMESPACES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reading deprecated attributes of preloaded modules
        _NAMESPACES = snapshot_namespaces(modules)
    rootfs.python_paths()  # cached for every child: what the sandbox binds and the audit hook trusts
    gc.collect()
    gc.freeze()


PID_NAMESPACES_FLAG = "--pid-namespaces"


def main(argv: list[str]) -> None:
    pid_namespaces = PID_NAMESPACES_FLAG in argv[:1]
    socket_path, modules = (argv[1], argv[2:]) if pid_namespaces else (argv[0], argv[1:])
    _die_with_parent()
    preload(modules)
    # Children are reaped by the kernel as they end: none lingers as a zombie after the grader
    # killed it, even when the zygote is stopped right after (the grader's leftover check).
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    server = ZygoteServer(socket_path, _Handler)
    if pid_namespaces:
        server.pid_namespaces = PidNamespacePerChild()
    os.chmod(socket_path, 0o600)
    print("zygote ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
