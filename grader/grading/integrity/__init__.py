"""Grading integrity: what keeps a submission from forging its grade or reading what it should not.

``flags`` is the one record type every check reports with; see docs/grading-security.md for the
design (what is prevented, what is detected, and what each check costs).
"""
