"""Instant feedback (issue #20): the grading half, with no knowledge of the hub or the exchange.

- :mod:`.policy`: what the instructor set per course and assignment (``instant_feedback.yaml``).
- :mod:`.rate_limit`: whether one more graded submission is allowed now, and when the next one is.
- :mod:`.batch`: grade a batch of submissions with ``grader autograde``'s own code, read the results.
- :mod:`.results`: what a graded submission scored, per test, with hidden tests marked.
- :mod:`.worker`: the process the exchange service starts per course to run batches.
"""
