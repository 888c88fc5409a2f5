"""The grader's side of the executor: start a zygote, run one submission's cells, enforce limits.

Every limit ends only the submission that broke it. The cell that was running gets an ``error``
output naming the reason, every cell not run gets one too (so nbgrader scores them zero rather
than treating a silent cell as a pass), and the result carries a ``status`` for reports.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grader.flags import Flag
from grader.grading.executor import cgroups
from grader.grading.executor.limits import Limits
from grader.grading.executor.protocol import ConnectionClosed, recv_message, send_message
from grader.grading.executor.sandbox import SandboxSpec, SlotClaim, can_isolate, describe_isolation, ensure_sandbox_user
from grader.grading.executor.zygote import PID_NAMESPACES_FLAG, allowed_environment
from grader.grading.parsing import AST_LOCK
from grader.regular_files import read_regular_files

# torch's optimisers import torch._dynamo on their first step (~0.9 s in every fresh process):
# import it once here instead of once per submission.
DEFAULT_PRELOAD = ["numpy", "scipy", "pandas", "matplotlib.pyplot", "sklearn", "torch", "torch.optim", "torch._dynamo", "tensorflow"]
_MEMORY_POLL_SECONDS = 0.1


@dataclass
class CellResult:
    outputs: list[dict]
    execution_count: int | None
    timed_out: bool = False  # interrupted at the per-cell timeout (whether or not the code caught it)


@dataclass
class ExecutionResult:
    cells: list[CellResult]
    status: str = "ok"  # ok | timeout | budget | memory | processes | output | died | error
    reason: str = ""
    peak_memory_bytes: int = 0
    isolated: bool = False
    seconds: float = 0.0
    flags: list[Flag] = field(default_factory=list)  # what the submission's process did that an instructor should see
    files: dict[str, bytes] = field(default_factory=dict)  # files the notebook created or changed in its folder


@dataclass
class ExecutionRequest:
    cells: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    slot: int = 0
    # Per cell: whether the instructor wrote it (a test or locked cell, restored from the release
    # by nbgrader). Before each of them the shell and libraries are put back as they were.
    trusted: list[bool] | None = None
    max_files_bytes: int = 64 << 20  # files written back, in all


def _error_output(ename: str, reason: str) -> dict:
    return {"output_type": "error", "ename": ename, "evalue": reason, "traceback": [f"{ename}: {reason}"]}


def _raised_memory_error(outputs: list[dict]) -> bool:
    """Whether a cell ended in MemoryError (numpy's own is a subclass named ``_ArrayMemoryError``)."""
    return any(output.get("output_type") == "error" and output.get("ename", "").endswith("MemoryError")
               for output in outputs)


def _process_tree(root: int) -> list[int]:
    """``root`` and every process below it, from ``/proc/PID/task/TID/children``.

    The submission's process is a child subreaper (see zygote.run_session), so a process its code
    double-forks or moves to another session still hangs below it. Reading a few files per
    process is far cheaper than scanning all of ``/proc`` after every cell.
    """
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in threads:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
            except OSError:
                continue
    return tree


def _private_memory(pid: int) -> int:
    """Anonymous and shared-memory pages resident for ``pid``, in bytes (``/proc/PID/status``).

    Cheap to read, unlike ``smaps_rollup`` (whose proportional set size the kernel computes by
    walking every page: ~40 ms for a fork of a zygote holding torch and tensorflow).
    """
    total = 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("RssAnon:", "RssShmem:")):
                    total += int(line.split()[1]) * 1024
    except OSError:
        return 0
    return total


def _memory_bytes(pids: list[int], inherited: int) -> int:
    """Memory the submission's processes added to what they inherited from the zygote.

    A fork starts with the zygote's anonymous pages counted as its own (shared copy-on-write), so
    each process is charged for what it holds beyond that: new allocations and pages it copied.
    """
    return sum(max(0, _private_memory(pid) - inherited) for pid in pids)


def _kill_strays(root: int, keep: int) -> None:
    """Between cells, end any process the student's code left running below the submission."""
    for pid in _process_tree(root):
        if pid != keep:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _kill_user_processes(uid: int) -> None:
    """Kill every process of a sandbox user: catches children that escaped the process group."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                uid_line = next(line for line in status if line.startswith("Uid:"))
            if int(uid_line.split()[1]) == uid:
                os.kill(int(entry), signal.SIGKILL)
        except (OSError, StopIteration, ValueError):
            continue


def _tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read().decode(errors="replace").strip()
    except OSError:
        return ""


_HEADER = struct.Struct("!Q")
_SYSCALL_RECVFROM = {"x86_64": 45, "aarch64": 207}.get(os.uname().machine)


class _OutputChannel:
    """The grader's end of a submission's output pipe: framed JSON messages, read as they come."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = b""
        self.corrupt = False
        os.set_blocking(fd, False)

    def read_available(self) -> list[dict]:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
        messages = []
        while len(self.buffer) >= _HEADER.size and not self.corrupt:
            (size,) = _HEADER.unpack_from(self.buffer)
            if size > 64 << 20:
                self.corrupt = True
                break
            if len(self.buffer) < _HEADER.size + size:
                break
            payload, self.buffer = self.buffer[_HEADER.size:_HEADER.size + size], self.buffer[_HEADER.size + size:]
            try:
                message = json.loads(payload)
            except ValueError:
                self.corrupt = True
                break
            if isinstance(message, dict):
                messages.append(message)
        return messages


class _CellOutputs:
    """One cell's outputs as nbformat dicts, built from the messages: streams merged as a kernel's
    frontend merges them; a clear never removes an error (in a kernel an error ends the cell, so
    a clear after it can only come from code that outlived its cell)."""

    def __init__(self):
        self.outputs: list[dict] = []
        self.cleared_error = False

    def apply(self, message: dict, flags: list[Flag]) -> None:
        if "flag" in message:
            flags.append(Flag("runtime", str(message["flag"])))
        elif message.get("clear"):
            errors = [output for output in self.outputs if output.get("output_type") == "error"]
            if errors:
                self.cleared_error = True
            self.outputs = errors
        elif isinstance(message.get("output"), dict):
            output = message["output"]
            last = self.outputs[-1] if self.outputs else None
            if (output.get("output_type") == "stream" and last is not None and last.get("output_type") == "stream"
                    and last.get("name") == output.get("name")):
                last["text"] += str(output.get("text", ""))
            else:
                self.outputs.append(dict(output))


def _ends_with_expression(code: str) -> bool:
    """Whether IPython would display a value at the end of this cell (its last statement is an
    expression); True when the cell cannot be parsed here (then IPython decides)."""
    import ast

    from IPython.core.inputtransformer2 import TransformerManager

    try:
        source = TransformerManager().transform_cell(code)
        with AST_LOCK:  # grader/grading/parsing.py: one thread at a time on CPython 3.11
            body = ast.parse(source).body
    except (SyntaxError, ValueError):
        return True
    return bool(body) and isinstance(body[-1], ast.Expr)


def _kernel_shaped(outputs: list[dict], code: str = "") -> tuple[list[dict], list[str]]:
    """The outputs a kernel could have produced for one cell, and what was dropped.

    A kernel sends at most one execute_result, and none for a cell that failed (the last
    expression's value is displayed only when the cell completes). nbgrader scores a test cell by
    the first execute_result or error it meets, so an execute_result slipped in before an error
    (from a destructor, a thread, or written on the channel directly) would turn a failure into
    credit: it is dropped and reported.
    """
    results = [o for o in outputs if o.get("output_type") == "execute_result"]
    failed = any(o.get("output_type") == "error" for o in outputs)
    if results and code and not _ends_with_expression(code):
        return [o for o in outputs if o.get("output_type") != "execute_result"], [
            "an execute_result from a cell that does not end with an expression (a kernel shows none); dropped"]
    if failed and results:
        return [o for o in outputs if o.get("output_type") != "execute_result"], [
            "an execute_result in a cell that failed (not something a kernel produces); dropped"]
    if len(results) > 1:
        keep = results[-1]
        return [o for o in outputs if o.get("output_type") != "execute_result" or o is keep], [
            f"{len(results)} execute_results in one cell (a kernel sends at most one); only the last kept"]
    return outputs, []


def _waiting_for_grader(pid: int, fd: int) -> bool | None:
    """Whether ``pid``'s main thread is blocked receiving on descriptor ``fd`` (its connection to
    the grader), from /proc/PID/syscall; None where that cannot be read on this machine."""
    if _SYSCALL_RECVFROM is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return None
    if not fields or not fields[0].isdigit():
        return None
    return int(fields[0]) == _SYSCALL_RECVFROM and len(fields) > 1 and int(fields[1], 16) == fd


class Zygote:
    """A running zygote process; ``execute`` may be called from several threads at once."""

    _described = False

    def __init__(self, preload: list[str] | None = None, *, start_timeout: float = 180.0, isolate: bool = True):
        self.preload = DEFAULT_PRELOAD if preload is None else preload
        # False only to measure what isolation costs (benchmarks/autograde.py): the integrity
        # checks stay, the user, namespaces and cgroups go.
        self.isolate = isolate
        self._socket_dir = tempfile.mkdtemp(prefix="grader-zygote-")
        self.socket_path = os.path.join(self._socket_dir, "zygote.sock")
        # The zygote, and so every submission, starts with an allow-listed environment: the
        # grader's tokens and passwords are never in its memory, not even in /proc/PID/environ.
        env = allowed_environment(dict(os.environ))
        env.setdefault("PATH", os.defpath)
        env["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
        env["IPYTHONDIR"] = os.path.join(self._socket_dir, "ipython")
        # Isolating, each submission's process is forked into a PID namespace of its own.
        flags = [PID_NAMESPACES_FLAG] if isolate and can_isolate() else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grader.grading.executor.zygote", *flags, self.socket_path, *self.preload],
            stdout=subprocess.PIPE, stderr=None, env=env, text=True, cwd=self._socket_dir,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], start_timeout)
        if not ready or self.process.stdout.readline().strip() != "zygote ready":
            self.close()
            raise RuntimeError(f"the executor zygote did not start within {start_timeout}s")
        # What every child starts with; memory limits count what a submission adds to it.
        self.inherited_memory = _private_memory(self.process.pid)
        self.cgroup_layout = cgroups.detect_layout()
        self._cleanup: queue.Queue = queue.Queue()
        threading.Thread(target=self._remove_groups, name="grader-cgroup-cleanup", daemon=True).start()

    def _remove_groups(self) -> None:
        while True:
            group = self._cleanup.get()
            try:
                if group is not None:
                    group.remove()
            finally:
                self._cleanup.task_done()
            if group is None:
                return

    def describe(self) -> str:
        """What confines student code on this machine, in one line."""
        return describe_isolation(root=self.isolate and can_isolate(), cgroups=self.cgroup_layout.version if self.cgroup_layout else None)

    def close(self) -> None:
        if hasattr(self, "_cleanup"):
            self._cleanup.put(None)
            self._cleanup.join()  # every submission's cgroup is gone before close returns
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self._socket_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def execute(self, request: ExecutionRequest, limits: Limits) -> ExecutionResult:
        started = time.monotonic()
        isolate = self.isolate and can_isolate()
        uid = ensure_sandbox_user(request.slot)[0] if isolate else None
        group = None
        if isolate and self.cgroup_layout:
            group = cgroups.SubmissionGroup(
                self.cgroup_layout, f"slot{request.slot}-{uuid.uuid4().hex[:8]}",
                memory_bytes=limits.memory_bytes, max_tasks=limits.max_processes * 4,
            )
        sandbox = SandboxSpec(
            slot=request.slot,
            memory_bytes=limits.memory_bytes,
            max_processes=limits.max_processes,
            cgroup_files=group.join_files() if group else [],
            drop_privileges=isolate,
        )
        result = ExecutionResult(cells=[])
        scratch = tempfile.mkdtemp(prefix="grader-scratch-")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        read_end, write_end = os.pipe()
        channel = _OutputChannel(read_end)
        child_pid = child_group = None
        trusted = request.trusted or [False] * len(request.cells)
        try:
            sock.connect(self.socket_path)
            send_message(sock, {
                "files": {name: base64.b64encode(data).decode() for name, data in request.files.items()},
                "env": request.env,
                "sandbox": asdict(sandbox),
                "output_cap_bytes": limits.output_bytes,
                "scratch": scratch,
            })
            socket.send_fds(sock, [b"o"], [write_end])
            os.close(write_end)
            write_end = None
            ready = recv_message(sock)
            child_pid, child_group, result.isolated, control_fd = ready["pid"], ready["pgid"], ready["isolated"], ready["fd"]
            submission_deadline = started + limits.submission_timeout
            for index, code in enumerate(request.cells):
                cell_timeout = max(0.1, min(limits.cell_timeout, submission_deadline - time.monotonic()))
                nonce = secrets.token_hex(16)
                send_message(sock, {"type": "execute", "code": code, "timeout": cell_timeout, "nonce": nonce,
                                    "trusted": bool(trusted[index])})
                outputs = _CellOutputs()
                status, reason, reply = self._await_result(
                    sock, channel, outputs, nonce, child_pid, control_fd, cell_timeout, limits, result, submission_deadline, group,
                )
                if outputs.cleared_error:
                    result.flags.append(Flag("runtime", f"cell {index + 1}: an error output was cleared after the cell failed; kept"))
                if channel.buffer:
                    channel.corrupt = True  # half a message at the end of a cell: someone else wrote on the pipe
                if status == "died":
                    crash = [line for line in _tail(os.path.join(scratch, "logs", "fd2.log")).splitlines() if "Fatal Python error" in line]
                    if group is not None and group.oom_killed():
                        status, reason = "memory", (f"memory limit exceeded: > {limits.memory_bytes >> 20} MiB in cell {index + 1} "
                                                     "(the kernel's OOM killer ended it)")
                    else:
                        reason = f"the process running the submission ended during cell {index + 1}" + (
                            f" ({crash[-1].strip()})" if crash else " (it exited or was killed)"
                        )
                if status != "ok":
                    shaped, dropped = _kernel_shaped(outputs.outputs + [_error_output("GraderLimitExceeded", reason)], code)
                    result.flags += [Flag("runtime", f"cell {index + 1}: {why}") for why in dropped]
                    result.cells.append(CellResult(shaped, None))
                    result.status, result.reason = status, reason
                    break
                error = reply.get("error")
                if isinstance(error, dict) and not any(o.get("output_type") == "error" for o in outputs.outputs):
                    # The cell failed but its traceback never reached us: the display was muted.
                    # Show the error as a kernel would have, so the cell scores what it earned.
                    outputs.outputs.append(_error_output(str(error.get("ename", "Error")), str(error.get("evalue", ""))))
                    result.flags.append(Flag("runtime", f"cell {index + 1} failed with {error.get('ename')} but its "
                                                        "traceback display was suppressed; the error is recorded"))
                shaped, dropped = _kernel_shaped(outputs.outputs, code)
                result.flags += [Flag("runtime", f"cell {index + 1}: {why}") for why in dropped]
                result.cells.append(CellResult(shaped, reply["execution_count"], bool(reply.get("timed_out"))))
                _kill_strays(child_pid, keep=child_pid)
                if _raised_memory_error(outputs.outputs):
                    # The address-space backstop (sandbox.apply_limits) refused an allocation before
                    # the next memory poll saw the growth: the same limit, caught by the kernel.
                    result.status = "memory"
                    result.reason = f"memory limit exceeded: cell {index + 1} raised MemoryError (allocation refused)"
                    break
                if reply.get("output_exceeded"):
                    result.status = "output"
                    result.reason = f"output limit of {limits.output_bytes} bytes exceeded in cell {index + 1}"
                    break
            else:
                send_message(sock, {"type": "shutdown"})
        except (ConnectionClosed, OSError, KeyError, TypeError) as error:
            if result.status == "ok":
                result.status, result.reason = "error", f"executor failure: {error}"
        finally:
            sock.close()
            for message in channel.read_available():
                if "flag" in message:
                    result.flags.append(Flag("runtime", str(message["flag"])))
            if channel.corrupt:
                result.flags.append(Flag("runtime", "the output channel to the grader was written to directly (corrupt messages)"))
            os.close(read_end)
            if write_end is not None:
                os.close(write_end)
            for target in (child_group, child_pid):
                if target:
                    try:
                        os.killpg(target, signal.SIGKILL) if target == child_group else os.kill(target, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            if group is not None:
                # Every process was sent SIGKILL above; waiting for the namespaces to be torn
                # down (~25 ms) and removing the group happens off the grading path.
                self._cleanup.put(group)
            elif uid is not None:
                _kill_user_processes(uid)
            work = Path(scratch) / "work"
            if work.is_dir():
                files, file_flags = read_regular_files(work, exclude_suffixes=(), max_total_bytes=request.max_files_bytes)
                result.files = {name: data for name, data in files.items() if request.files.get(name) != data}
                result.flags += [Flag("files", f"written while grading: {flag.reason}") for flag in file_flags]
            shutil.rmtree(scratch, ignore_errors=True)
        not_run = f"not executed: {result.reason}"
        while len(result.cells) < len(request.cells):
            result.cells.append(CellResult([_error_output("GraderLimitExceeded", not_run)], None))
        result.seconds = time.monotonic() - started
        return result

    def _await_result(self, sock, channel, outputs, nonce, child_pid, control_fd, cell_timeout, limits, result,
                      submission_deadline, group):
        """Wait for one cell's end while collecting its outputs and watching memory and time.

        Returns (status, reason, reply). A "result" counts only with this cell's nonce and while the
        submission's main thread is back waiting for the grader; anything else is flagged and ignored.
        """
        hard_deadline = min(time.monotonic() + cell_timeout, submission_deadline) + limits.kill_grace
        while True:
            readable, _, _ = select.select([sock, channel.fd], [], [], _MEMORY_POLL_SECONDS)
            if channel.fd in readable:
                for message in channel.read_available():
                    outputs.apply(message, result.flags)
            if sock in readable:
                try:
                    reply = recv_message(sock)
                except ConnectionClosed:
                    for message in channel.read_available():
                        outputs.apply(message, result.flags)
                    return "died", "", None
                if reply.get("type") == "result" and reply.get("nonce") == nonce and self._settled(child_pid, control_fd):
                    # Outputs written before the result are in the pipe already.
                    for message in channel.read_available():
                        outputs.apply(message, result.flags)
                    return "ok", "", reply
                result.flags.append(Flag("runtime", "a message to the grader did not come from the grader's own cell loop "
                                                    "(forged or out-of-turn result); ignored"))
                continue
            members = _process_tree(child_pid)
            if len(members) > limits.max_processes:
                return "processes", f"process limit exceeded: {len(members)} processes > {limits.max_processes}", None
            used = group.memory_bytes() if group is not None else _memory_bytes(members, self.inherited_memory)
            result.peak_memory_bytes = max(result.peak_memory_bytes, used)
            if used > limits.memory_bytes:
                return "memory", f"memory limit exceeded: {used >> 20} MiB > {limits.memory_bytes >> 20} MiB", None
            now = time.monotonic()
            if now > submission_deadline + limits.kill_grace:
                return "budget", f"wall-clock budget of {limits.submission_timeout:.0f} s exceeded", None
            if now > hard_deadline:
                return "timeout", f"cell did not finish within {cell_timeout:.0f} s and ignored the interrupt", None

    @staticmethod
    def _settled(child_pid: int, control_fd: int) -> bool:
        """After a result: the main thread goes back to waiting on its connection within a moment."""
        deadline = time.monotonic() + 1.0
        while True:
            waiting = _waiting_for_grader(child_pid, control_fd)
            if waiting is None or waiting:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0005)


def claim_sandbox_slots(count: int) -> SlotClaim:
    """Claim ``count`` sandbox slots for this grading run, creating their users (as root)."""
    claim = SlotClaim(count)
    if can_isolate():
        for slot in claim.slots:
            ensure_sandbox_user(slot)
    return claim
