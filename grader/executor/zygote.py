"""The pre-importing forking server: ``python -m grader.executor.zygote SOCKET MODULE...``.

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

from grader.executor.protocol import ConnectionClosed, recv_message, send_message
from grader.executor.sandbox import SandboxSpec, confine


class CellTimeout(KeyboardInterrupt):
    """Raised into a cell that runs past the per-cell timeout, as a kernel interrupt would be."""


def _on_alarm(signum, frame):
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


def run_session(conn: socket.socket) -> None:
    """Child side: set up, confine, then execute cells one by one until told to stop."""
    start = recv_message(conn)
    os.setsid()  # our own process group: the grader kills it, and whatever it spawned, as one
    scratch = tempfile.mkdtemp(prefix="grader-scratch-")
    _write_files(scratch, start.get("files", {}))
    isolated = confine(SandboxSpec(**start["sandbox"]), scratch)
    # Die with the zygote (set after confine: changing user clears the setting).
    _die_with_parent()
    _keep_descendants()
    os.chdir(scratch)
    os.environ.update(start.get("env", {}))
    os.environ["HOME"] = scratch
    # Reset the warnings registry so warnings the zygote's imports triggered show again, as in a fresh kernel.
    warnings.resetwarnings()
    from grader.executor.cellrunner import CellRunner  # imported in the zygote already; cheap

    runner = CellRunner(output_cap_bytes=start["output_cap_bytes"], fd_capture_dir=scratch)
    faulthandler.enable(file=open(os.path.join(scratch, ".fd2.log"), "a"))  # a segfault leaves a reason
    signal.signal(signal.SIGALRM, _on_alarm)
    my_pid = os.getpid()
    send_message(conn, {"type": "ready", "pid": my_pid, "scratch": scratch, "isolated": isolated})
    while True:
        message = recv_message(conn)
        if message["type"] != "execute":
            break
        signal.setitimer(signal.ITIMER_REAL, message["timeout"])
        try:
            outputs, count = runner.run(message["code"])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if os.getpid() != my_pid:
            os._exit(0)  # a process the student forked must never answer for the submission
        send_message(
            conn,
            {"type": "result", "outputs": outputs, "execution_count": count, "output_exceeded": runner.recorder.exceeded},
        )


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


def preload(modules: list[str]) -> None:
    warnings.filterwarnings("ignore")
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:  # a missing optional library must not stop grading
            print(f"zygote: could not preload {name}: {error}", file=sys.stderr)
    from grader.executor.cellrunner import prepare_shell

    prepare_shell()
    warnings.resetwarnings()
    # Every object so far is shared with the children copy-on-write. Moving them out of the
    # garbage collector's reach keeps a child's first full collection from touching (and so
    # copying) every page of the pre-imported heap: tens of milliseconds per submission.
    gc.collect()
    gc.freeze()


def main(argv: list[str]) -> None:
    socket_path, modules = argv[0], argv[1:]
    _die_with_parent()
    preload(modules)
    server = ZygoteServer(socket_path, _Handler)
    os.chmod(socket_path, 0o600)
    print("zygote ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
