"""Grading and course operations for the AI course platform.

One module per verb (``release``, ``collect``, ``autograde``, ``feedback``), each a plain function
over nbgrader's own formats and gradebook; ``grader.cli`` is the thin command line over them.
Hub-side platform code lives in :mod:`grader.hub`.
"""

__version__ = "0.1.0"
