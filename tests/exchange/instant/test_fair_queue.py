"""The grading queue's fairness: one submission per student per batch, oldest assignment first."""

from __future__ import annotations

from grader.exchange.service.instant.fair_queue import FairQueue, QueuedJob


def job(student, assignment="a1", number=0):
    return QueuedJob(student, assignment, f"{student}-{assignment}-{number:02d}", "t", "/p")


def test_a_student_with_twenty_submissions_never_starves_the_others():
    queue = FairQueue()
    for number in range(20):
        queue.push(job("spam", number=number))
    for student in ("amy", "bob", "cat"):
        queue.push(job(student))
    first = queue.next_batch(64)
    assert [j.student_id for j in first] == ["spam", "amy", "bob", "cat"]
    assert first[0].submission_id == "spam-a1-00"  # each student's oldest first
    batches = []
    while queue:
        batches.append(queue.next_batch(64))
    assert [[j.submission_id for j in batch] for batch in batches] == [[f"spam-a1-{n:02d}"] for n in range(1, 20)]


def test_batches_are_of_one_assignment_the_one_waiting_longest():
    queue = FairQueue()
    for student, assignment in (("amy", "a2"), ("bob", "a1"), ("cat", "a2")):
        queue.push(job(student, assignment))
    assert [(j.student_id, j.assignment_id) for j in queue.next_batch(64)] == [("amy", "a2"), ("cat", "a2")]
    assert [(j.student_id, j.assignment_id) for j in queue.next_batch(64)] == [("bob", "a1")]


def test_batch_size_students_alone_and_students_being_graded():
    queue = FairQueue()
    for student in ("amy", "bob", "cat", "dan"):
        queue.push(job(student))
    assert [j.student_id for j in queue.next_batch(2, busy={"amy"})] == ["bob", "cat"]
    queue.push(job("bob", number=1))
    # amy ran into a limit last time: graded alone, and never inside another batch.
    assert [j.student_id for j in queue.next_batch(64, alone={"amy"})] == ["amy"]
    assert [j.student_id for j in queue.next_batch(64, alone={"dan"})] == ["dan"]  # waited longer than bob's second
    assert [j.student_id for j in queue.next_batch(64, alone={"dan"})] == ["bob"]
    assert len(queue) == 0 and queue.next_batch(64) == []


def test_the_same_submission_is_queued_once():
    queue = FairQueue()
    queue.push(job("amy"))
    queue.push(job("amy"))
    assert len(queue) == 1 and ("amy", "a1", "amy-a1-00") in queue
