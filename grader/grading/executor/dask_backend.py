"""Grade on a Dask cluster: each worker runs its own zygote, and submissions fan out to workers.

``grader autograde --scheduler tcp://host:8786`` sends every submission's cells and files to a
worker; the worker runs them in a fork of its local zygote, with the same sandbox and limits as
on one machine, and returns the outputs. Only the grader touches the gradebook. The worker-side
plugin starts the zygote when the worker starts and stops it with the worker.
"""

from __future__ import annotations

import queue

from distributed import Client, WorkerPlugin, get_worker

from grader.grading.executor.client import ExecutionRequest, ExecutionResult, Limits, Zygote, claim_sandbox_slots

PLUGIN_NAME = "grader-zygote"


class ZygotePlugin(WorkerPlugin):
    """Starts a zygote on each worker and hands out sandbox slots for its concurrent tasks."""

    name = PLUGIN_NAME

    def __init__(self, preload: list[str]):
        self.preload = preload

    def setup(self, worker):
        self.zygote = Zygote(self.preload)
        # One sandbox slot per task this worker runs at once, claimed on the worker's machine.
        self.claim = claim_sandbox_slots(worker.state.nthreads)
        self.slots = queue.Queue()
        for slot in self.claim.slots:
            self.slots.put(slot)

    def teardown(self, worker):
        self.zygote.close()
        self.claim.release()


def run_on_worker(request: ExecutionRequest, limits: Limits) -> ExecutionResult:
    plugin: ZygotePlugin = get_worker().plugins[PLUGIN_NAME]
    slot = plugin.slots.get()
    try:
        request.slot = slot
        return plugin.zygote.execute(request, limits)
    finally:
        plugin.slots.put(slot)


class DaskBackend:
    """Same interface as :class:`Zygote` (``execute``, ``close``), running on a cluster."""

    def __init__(self, scheduler_address: str, *, preload: list[str]):
        self.client = Client(scheduler_address)
        self.client.register_plugin(ZygotePlugin(preload), name=PLUGIN_NAME)

    def execute(self, request: ExecutionRequest, limits: Limits) -> ExecutionResult:
        # pure=False: two identical submissions are still two gradings.
        return self.client.submit(run_on_worker, request, limits, pure=False).result()

    def close(self) -> None:
        self.client.close()
