"""The error every grading verb raises for the instructor to read; its own module so that code
which never imports nbgrader (``grader status``) can raise it too."""

from __future__ import annotations


class GraderError(RuntimeError):
    """An operation failed in a way the instructor must see; the message names what and where."""
