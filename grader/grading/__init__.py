"""Grading: the instructor's verbs over nbgrader's course directory and gradebook.

One module per verb (:mod:`.release`, :mod:`.collect`, :mod:`.autograde`, :mod:`.feedback`,
:mod:`.export`, :mod:`.report`, :mod:`.status`), nbgrader glue (:mod:`.nbgrader_api`,
:mod:`.nbgrader_speedups`, :mod:`.gradebook`), the resume record (:mod:`.resume`), the sandboxed
executor (:mod:`.executor`) and the integrity checks (:mod:`.integrity`). Nothing here knows the hub.
"""
