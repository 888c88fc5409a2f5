"""Instant feedback in the exchange service (issue #20): every submission of a course and
assignment whose policy says so is queued, graded by a worker process of the course
(:mod:`grader.grading.instant.worker`), and shown to its student on their course page.

- :mod:`.fair_queue`: which submissions a worker grades next.
- :mod:`.state`: what was submitted, decided and graded (SQLite in the service's storage).
- :mod:`.dispatcher`: the queue, the course's worker processes, the pause switch.
- :mod:`.views`: what a student and what the staff see, as JSON.
- :mod:`.api` (token, JSON) and :mod:`.pages` (the hub's login, HTML).
"""
