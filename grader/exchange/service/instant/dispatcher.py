"""The course's grading queue and its worker processes.

One :class:`CourseGrader` per course with instant feedback. Submissions go into its
:class:`~.fair_queue.FairQueue`; whenever a worker is free and the course is not paused, the next
batch goes to that worker (``python -m grader.grading.instant.worker``, a child of this service,
in a session of its own). Several workers per course, so a batch held up by a submission that runs
to its time limit never holds up the batches behind it.

A worker that dies, or answers nothing for ``batch_timeout`` seconds of a batch (counted once it
has said it is ready, so its own start-up is never counted against a submission), is killed (its
process group, by id: the zygote and the sandboxes die with it) and replaced; its batch's submissions are queued again, each alone, and a submission
that stops a worker a second time is marked ``error`` and flagged, so the queue always moves on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grader.exchange.service.instant.fair_queue import FairQueue, QueuedJob
from grader.exchange.service.instant.state import InstantState, now_utc
from grader.grading.instant.policy import PolicyError, PolicyFile

log = logging.getLogger("grader.exchange.instant")
# A JSON line from a worker carries a batch's feedback pages at most; asyncio's default is 64 KiB.
LINE_LIMIT = 256 << 20
MAX_TRIES = 2
STARTUP_TIMEOUT = 300.0  # seconds a new worker may take to import what grading needs


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    busy_with: list[QueuedJob] = field(default_factory=list)

    def kill(self) -> None:
        if self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the worker and its zygote's children
            except ProcessLookupError:
                pass


class CourseGrader:
    def __init__(self, *, course_id: str, course_dir: Path, state: InstantState, feedback_root: Path,
                 workers: int = 2, batch_size: int = 64, batch_timeout: float = 900.0):
        self.course_id = course_id
        self.course_dir = Path(course_dir)
        self.state = state
        self.feedback_root = feedback_root
        self.policies = PolicyFile(self.course_dir)
        self.queue = FairQueue()
        self.worker_count = max(1, workers)
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self.workers: list[Worker] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._alone: set[str] = set()  # students whose last submission ran into a limit or stopped a worker
        self._in_hand: dict[int, list[QueuedJob]] = {}  # the batch each worker loop holds

    # --- what the handlers call ------------------------------------------------------------------

    def policy(self, assignment_id: str):
        """The assignment's policy; a broken policy file counts as off (the error is logged, and
        shown to the staff by the queue's JSON)."""
        try:
            return self.policies.load().for_assignment(assignment_id)
        except PolicyError as error:
            log.error("%s", error)
            return None

    def policy_error(self) -> str:
        try:
            self.policies.load()
        except PolicyError as error:
            return str(error)
        return ""

    def enqueue(self, job: QueuedJob) -> None:
        self.queue.push(job)
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self.state.paused(self.course_id)

    def set_paused(self, paused: bool) -> None:
        self.state.set_paused(self.course_id, paused)
        self._wake.set()

    def grading_now(self) -> list[QueuedJob]:
        """The submissions taken from the queue and not finished (a worker may still be starting)."""
        return [job for batch in self._in_hand.values() for job in batch]

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        # What a stopped service left queued or half-graded is graded now.
        for row in self.state.submissions(self.course_id, statuses=("queued", "grading")):
            self.state.update(self.course_id, row.student_id, row.assignment_id, row.submission_id, status="queued")
            self.queue.push(QueuedJob(row.student_id, row.assignment_id, row.submission_id, row.timestamp, row.path))
        self._tasks = [asyncio.ensure_future(self._run(index)) for index in range(self.worker_count)]
        self._wake.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for worker in self.workers:
            worker.kill()
            await worker.process.wait()
        self.workers = []

    # --- the loop ------------------------------------------------------------------------------

    async def _run(self, index: int) -> None:
        worker: Worker | None = None
        while True:
            await self._wake.wait()
            busy = {job.student_id for job in self.grading_now()}
            # A burst is shared between the workers rather than left to whichever is free first.
            size = min(self.batch_size, max(1, -(-len(self.queue) // self.worker_count)))
            batch = [] if self.paused else self.queue.next_batch(size, alone=self._alone, busy=busy)
            if not batch:
                self._wake.clear()
                continue
            self._in_hand[index] = batch  # its students count as busy from now on
            self._wake.set()  # another free worker may take the next batch at once
            sent = False
            try:
                if worker is None or worker.process.returncode is not None:
                    worker = await self._start_worker()
                worker.busy_with, sent = list(batch), True
                await self._grade(worker, batch)
            except Exception as error:  # the worker died, stalled or did not start: the queue moves on
                log.error("course %s: worker %d failed on a batch of %d: %s", self.course_id, index, len(batch), error)
                # What the worker answered for stays answered; the rest is graded again.
                left = worker.busy_with if sent else batch
                if worker is not None:
                    worker.kill()
                    await worker.process.wait()
                self._requeue(left, f"the grader stopped while grading it ({error})")
            finally:
                self._in_hand.pop(index, None)
                if worker is not None:
                    worker.busy_with = []
            if worker is not None and worker.process.returncode is not None:
                self.workers.remove(worker)
                worker = None
            self._wake.set()

    async def _start_worker(self) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "grader.grading.instant.worker", f"--course-dir={self.course_dir}",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=LINE_LIMIT,
            start_new_session=True, cwd=str(self.course_dir))
        worker = Worker(process)
        try:
            # Starting (Python, nbgrader) is not grading: the batch timeout counts from this answer.
            ready = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)
            if not ready or not json.loads(ready).get("ready"):
                raise RuntimeError(f"the grading process did not start (status {await process.wait()})")
        except BaseException:
            worker.kill()
            await process.wait()
            raise
        self.workers.append(worker)
        return worker

    async def _grade(self, worker: Worker, batch: list[QueuedJob]) -> None:
        assignment_id = batch[0].assignment_id
        policy = self.policy(assignment_id)
        for job in batch:
            self.state.update(self.course_id, job.student_id, job.assignment_id, job.submission_id, status="grading")
        message = {"assignment_id": assignment_id, "feedback": bool(policy and policy.show == "full"),
                   "jobs": [{"student_id": job.student_id, "submission_id": job.submission_id,
                             "timestamp": job.timestamp, "path": job.path} for job in batch]}
        worker.process.stdin.write((json.dumps(message) + "\n").encode())
        await worker.process.stdin.drain()
        by_id = {job.submission_id: job for job in batch}
        while True:
            line = await asyncio.wait_for(worker.process.stdout.readline(), self.batch_timeout)
            if not line:
                raise RuntimeError(f"the worker exited with status {await worker.process.wait()}")
            answer = json.loads(line)
            if answer.get("done"):
                break
            if "batch_error" in answer:
                log.error("course %s: batch of %s failed: %s", self.course_id, assignment_id, answer["batch_error"])
                self._requeue(worker.busy_with, f"the batch failed: {answer['batch_error']}")
                worker.busy_with = []
            elif "feedback" in answer:
                self._store_feedback(assignment_id, answer["feedback"])
            elif answer.get("submission_id") in by_id:
                job = by_id[answer["submission_id"]]
                self._record(job, answer)
                worker.busy_with = [other for other in worker.busy_with if other is not job]

    def _record(self, job: QueuedJob, answer: dict) -> None:
        flags = answer.get("flags") or []
        if answer.get("limit"):
            self._alone.add(job.student_id)
        else:
            self._alone.discard(job.student_id)
        self.state.update(self.course_id, job.student_id, job.assignment_id, job.submission_id,
                          status=answer["status"], result=answer.get("result"), flags=flags,
                          message=answer.get("message", "") or answer.get("limit", ""), graded_at=now_utc())

    def _requeue(self, jobs: list[QueuedJob], reason: str) -> None:
        for job in jobs:
            row = self.state.submissions(self.course_id, student_id=job.student_id, assignment_id=job.assignment_id)
            tries = next((r.tries for r in row if r.submission_id == job.submission_id), 0) + 1
            if tries >= MAX_TRIES:
                self.state.update(self.course_id, job.student_id, job.assignment_id, job.submission_id,
                                  status="error", tries=tries, message=reason, graded_at=now_utc(),
                                  flags=[{"kind": "runtime", "reason": reason}])
            else:
                # Alone next time: if this submission is what stops workers, it stops only its own batch.
                self._alone.add(job.student_id)
                self.state.update(self.course_id, job.student_id, job.assignment_id, job.submission_id,
                                  status="queued", tries=tries)
                self.queue.push(job)

    def _store_feedback(self, assignment_id: str, feedback: dict) -> None:
        if feedback.get("error"):
            log.error("course %s: feedback of %s not generated: %s", self.course_id, feedback["student_id"], feedback["error"])
        folder = self.feedback_root / feedback["student_id"] / assignment_id / feedback["submission_id"]
        folder.mkdir(parents=True, exist_ok=True)
        for name, html in feedback.get("files", {}).items():
            if "/" in name or not name.endswith(".html") or name.startswith("."):
                continue
            (folder / name).write_text(html)
        if feedback.get("files"):
            self.state.update(self.course_id, feedback["student_id"], assignment_id, feedback["submission_id"], feedback=1)
