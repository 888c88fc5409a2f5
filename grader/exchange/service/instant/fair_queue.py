"""A fair queue for a deadline burst: each batch holds at most one submission per student.

Batches are of one assignment (``grader autograde`` grades one at a time), the one whose oldest
submission has waited longest. Within it every student with a waiting submission gets their
oldest one in, in order of arrival, up to the batch size. So a student who submits twenty times
has one submission in each batch and everybody else's go in beside it: nobody waits behind
another student's pile. Students whose last submission ran into a limit (an endless loop, say)
are graded alone, so their timeouts never hold up anybody else's result.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueuedJob:
    student_id: str
    assignment_id: str
    submission_id: str
    timestamp: str
    path: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.student_id, self.assignment_id, self.submission_id


class FairQueue:
    def __init__(self):
        self._jobs: dict[tuple[str, str, str], QueuedJob] = {}  # arrival order (dicts keep it)

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, key) -> bool:
        return key in self._jobs

    def push(self, job: QueuedJob) -> None:
        self._jobs.setdefault(job.key, job)

    def jobs(self) -> list[QueuedJob]:
        return list(self._jobs.values())

    def next_batch(self, size: int, *, alone: frozenset[str] | set[str] = frozenset(),
                   busy: frozenset[str] | set[str] = frozenset()) -> list[QueuedJob]:
        """Take the next batch. ``alone``: students graded in a batch of their own. ``busy``:
        students with a submission being graded now (one folder per student: never two at once)."""
        waiting = [job for job in self._jobs.values() if job.student_id not in busy]
        if not waiting:
            return []
        first = waiting[0]
        if first.student_id in alone:
            batch = [first]
        else:
            batch, students = [], set()
            for job in waiting:
                if (job.assignment_id == first.assignment_id and job.student_id not in students
                        and job.student_id not in alone):
                    batch.append(job)
                    students.add(job.student_id)
                    if len(batch) == size:
                        break
        for job in batch:
            del self._jobs[job.key]
        return batch
