"""What one submission may use: the executor enforces these, and the command line states them.

Kept apart from :mod:`.client` (sockets, threads, subprocesses, the sandbox) so that
``grader autograde --help`` can print the defaults without importing the executor.
"""

from __future__ import annotations

from dataclasses import dataclass


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
