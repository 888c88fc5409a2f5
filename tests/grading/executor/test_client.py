"""The executor on its own: memory accounting against the zygote, and MemoryError as a limit."""

from __future__ import annotations

import pytest

from grader.grading.executor.client import ExecutionRequest, Limits, Zygote, claim_sandbox_slots

pytestmark = pytest.mark.slow

LIMITS = Limits(cell_timeout=20, submission_timeout=60, memory_bytes=400 << 20, kill_grace=2)


@pytest.fixture(scope="module")
def zygote():
    # A slot of our own: a concurrent grading on this machine never shares (and kills) our user.
    claim = claim_sandbox_slots(1)
    try:
        with Zygote(["numpy"]) as running:
            running.slot = claim.slots[0]
            yield running
    finally:
        claim.release()


def test_memory_counts_what_the_submission_added_not_what_it_inherited(zygote):
    # Hold ~120 MiB for a second, so the grader's memory poll sees it.
    cells = ["import numpy as np, time\nheld = np.ones(15 << 20)\ntime.sleep(1.0)", "print(held.nbytes >> 20)"]
    result = zygote.execute(ExecutionRequest(cells=cells, slot=zygote.slot), LIMITS)
    assert result.status == "ok", result.reason
    assert result.cells[1].outputs[0]["text"] == "120\n"
    # The zygote's own pages (numpy, IPython: tens of MiB) are not charged to the submission.
    assert 120 << 20 <= result.peak_memory_bytes < 150 << 20, result.peak_memory_bytes >> 20


def test_a_refused_allocation_ends_the_submission_as_a_memory_limit(zygote):
    cells = ["raise MemoryError('allocation refused')", "print('never run')"]
    result = zygote.execute(ExecutionRequest(cells=cells, slot=zygote.slot), LIMITS)
    assert result.status == "memory"
    assert "cell 1 raised MemoryError" in result.reason
    # The cell keeps its error; the cell after it is not run and says why.
    assert result.cells[0].outputs[0]["ename"] == "MemoryError"
    assert result.cells[1].outputs == [
        {"output_type": "error", "ename": "GraderLimitExceeded", "evalue": f"not executed: {result.reason}",
         "traceback": [f"GraderLimitExceeded: not executed: {result.reason}"]}
    ]


def test_reused_traceback_lexer_highlights_exactly_as_stack_data_does(monkeypatch):
    import stack_data.core
    from pygments.formatters import Terminal256Formatter
    from pygments.style import Style
    from pygments.token import Keyword, Token

    from grader.grading.executor.cellrunner import _reuse_traceback_lexer

    code = "def f(x):\n    return undefined_name + x / 0  # comment\nprint(f'{f(1)}')\n"
    ranges = [(21, 35)]  # undefined_name
    class Marked(Style):  # IPython's themes paint the executing node; so does this one
        styles = {Keyword: "bold #008000", Token.Name.ExecutingNode: "bg:#ffff00"}

    formatter = Terminal256Formatter(style=Marked)
    original = stack_data.core._pygmented_with_ranges
    expected = original(formatter, code, ranges)
    monkeypatch.setattr(stack_data.core, "_pygmented_with_ranges", original)
    _reuse_traceback_lexer()
    assert stack_data.core._pygmented_with_ranges is not original
    assert stack_data.core._pygmented_with_ranges(formatter, code, ranges) == expected
    # The executing node really is marked (so the comparison covers the ranges).
    assert expected != original(formatter, code, [])
