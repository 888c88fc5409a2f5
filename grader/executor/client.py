"""The grader's side of the executor: start a zygote, run one submission's cells, enforce limits.

Every limit ends only the submission that broke it. The cell that was running gets an ``error``
output naming the reason, every cell not run gets one too (so nbgrader scores them zero rather
than treating a silent cell as a pass), and the result carries a ``status`` for reports.
"""

from __future__ import annotations

import base64
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from grader.executor.protocol import ConnectionClosed, recv_message, send_message
from grader.executor.sandbox import SandboxSpec, SlotClaim, can_isolate, ensure_sandbox_user

# torch's optimisers import torch._dynamo on their first step (~0.9 s in every fresh process):
# import it once here instead of once per submission.
DEFAULT_PRELOAD = ["numpy", "scipy", "pandas", "matplotlib.pyplot", "sklearn", "torch", "torch.optim", "torch._dynamo", "tensorflow"]
_MEMORY_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Limits:
    cell_timeout: float = 300.0
    submission_timeout: float = 1800.0
    memory_bytes: int = 2 << 30
    output_bytes: int = 4 << 20
    max_processes: int = 16  # processes of the submission (its own and below); more ends it
    # After the per-cell timeout the child interrupts the cell itself, as a kernel interrupt
    # would; code that ignores the interrupt is killed this many seconds later.
    kill_grace: float = 5.0


@dataclass
class CellResult:
    outputs: list[dict]
    execution_count: int | None


@dataclass
class ExecutionResult:
    cells: list[CellResult]
    status: str = "ok"  # ok | timeout | budget | memory | processes | output | died | error
    reason: str = ""
    peak_memory_bytes: int = 0
    isolated: bool = False
    seconds: float = 0.0


@dataclass
class ExecutionRequest:
    cells: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    hide_paths: list[str] = field(default_factory=list)
    slot: int = 0


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


class Zygote:
    """A running zygote process; ``execute`` may be called from several threads at once."""

    def __init__(self, preload: list[str] | None = None, *, start_timeout: float = 180.0):
        self.preload = DEFAULT_PRELOAD if preload is None else preload
        self._socket_dir = tempfile.mkdtemp(prefix="grader-zygote-")
        self.socket_path = os.path.join(self._socket_dir, "zygote.sock")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grader.executor.zygote", self.socket_path, *self.preload],
            stdout=subprocess.PIPE,
            stderr=None,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")},
            text=True,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], start_timeout)
        if not ready or self.process.stdout.readline().strip() != "zygote ready":
            self.close()
            raise RuntimeError(f"the executor zygote did not start within {start_timeout}s")
        # What every child starts with; memory limits count what a submission adds to it.
        self.inherited_memory = _private_memory(self.process.pid)

    def close(self) -> None:
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
        sandbox = SandboxSpec(
            slot=request.slot,
            memory_bytes=limits.memory_bytes,
            max_processes=limits.max_processes,
            hide_paths=request.hide_paths,
        )
        uid = ensure_sandbox_user(request.slot)[0] if can_isolate() else None
        result = ExecutionResult(cells=[])
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        child_pid, scratch = None, None
        try:
            sock.connect(self.socket_path)
            send_message(sock, {
                "files": {name: base64.b64encode(data).decode() for name, data in request.files.items()},
                "env": request.env,
                "sandbox": asdict(sandbox),
                "output_cap_bytes": limits.output_bytes,
            })
            ready = recv_message(sock)
            child_pid, scratch, result.isolated = ready["pid"], ready["scratch"], ready["isolated"]
            submission_deadline = started + limits.submission_timeout
            for index, code in enumerate(request.cells):
                cell_timeout = max(0.1, min(limits.cell_timeout, submission_deadline - time.monotonic()))
                send_message(sock, {"type": "execute", "code": code, "timeout": cell_timeout})
                status, reason, reply = self._await_result(sock, child_pid, cell_timeout, limits, result, submission_deadline)
                if status == "died":
                    crash = [line for line in _tail(os.path.join(scratch, ".fd2.log")).splitlines() if "Fatal Python error" in line]
                    reason = f"the process running the submission ended during cell {index + 1}" + (
                        f" ({crash[-1].strip()})" if crash else " (it exited or was killed)"
                    )
                if status != "ok":
                    outputs = (reply or {}).get("outputs", [])
                    result.cells.append(CellResult(outputs + [_error_output("GraderLimitExceeded", reason)], None))
                    result.status, result.reason = status, reason
                    break
                result.cells.append(CellResult(reply["outputs"], reply["execution_count"]))
                _kill_strays(child_pid, keep=child_pid)
                if _raised_memory_error(reply["outputs"]):
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
        except (ConnectionClosed, OSError) as error:
            if result.status == "ok":
                result.status, result.reason = "error", f"executor failure: {error}"
        finally:
            sock.close()
            if child_pid:
                try:
                    os.killpg(child_pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if uid is not None:
                _kill_user_processes(uid)
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
        not_run = f"not executed: {result.reason}"
        while len(result.cells) < len(request.cells):
            result.cells.append(CellResult([_error_output("GraderLimitExceeded", not_run)], None))
        result.seconds = time.monotonic() - started
        return result

    def _await_result(self, sock, child_pid, cell_timeout, limits, result, submission_deadline):
        """Wait for one cell's reply while watching memory and time; (status, reason, reply)."""
        hard_deadline = min(time.monotonic() + cell_timeout, submission_deadline) + limits.kill_grace
        while True:
            readable, _, _ = select.select([sock], [], [], _MEMORY_POLL_SECONDS)
            if readable:
                try:
                    return "ok", "", recv_message(sock)
                except ConnectionClosed:
                    return "died", "", None
            members = _process_tree(child_pid)
            if len(members) > limits.max_processes:
                return "processes", f"process limit exceeded: {len(members)} processes > {limits.max_processes}", None
            used = _memory_bytes(members, self.inherited_memory)
            result.peak_memory_bytes = max(result.peak_memory_bytes, used)
            if used > limits.memory_bytes:
                return "memory", f"memory limit exceeded: {used >> 20} MiB > {limits.memory_bytes >> 20} MiB", None
            now = time.monotonic()
            if now > submission_deadline + limits.kill_grace:
                return "budget", f"wall-clock budget of {limits.submission_timeout:.0f} s exceeded", None
            if now > hard_deadline:
                return "timeout", f"cell did not finish within {cell_timeout:.0f} s and ignored the interrupt", None


def claim_sandbox_slots(count: int) -> SlotClaim:
    """Claim ``count`` sandbox slots for this grading run, creating their users (as root)."""
    claim = SlotClaim(count)
    if can_isolate():
        for slot in claim.slots:
            ensure_sandbox_user(slot)
    return claim
