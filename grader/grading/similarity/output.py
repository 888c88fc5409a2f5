"""What ``grader similarity`` leaves behind: a JSON file in the course directory (read by ``grader
report``, and by anything showing a column in the formgrader), and an HTML page with each flagged
pair's matching passages side by side."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np

from grader.grading.similarity.detect import Pair, Prepared, SimilarityResult, shared_mask
from grader.grading.similarity.fingerprints import K, contains

RESULTS_FOLDER = "similarity"  # in the course directory
SOLUTION_SHARE_SHOWN = 0.5  # students whose answer is at least this much the instructor's solution
_COLOURS = ["#ffe08a", "#a8e6a1", "#9fd3ff", "#ffb3c7", "#d7b8ff", "#ffc999", "#b8f0e6", "#e3e3a1"]

EXPLANATION = (
    "The score of a pair is the share of one student's answer (starter code and the instructor's solution "
    "taken out; variable names, literals, comments and layout ignored) that lies in passages of at least "
    f"{K} tokens also found in the other's; the larger of the two shares. It is a signal for a person to "
    "read, not a verdict: short or standard answers, help that the course allows, and a shared source "
    "(a textbook, a lesson) all score high, and a copy rewritten by hand can score low. Nothing has been "
    "decided or changed in the gradebook.")


def file_stem(assignment_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", assignment_id)


def results_path(course_dir: Path, assignment_id: str) -> Path:
    """Where the JSON results of ``assignment_id`` are kept in the course directory."""
    return Path(course_dir) / RESULTS_FOLDER / f"{file_stem(assignment_id)}.json"


def _who(prepared: Prepared) -> dict:
    return {"student_id": prepared.document.student_id, "corpus": prepared.document.origin or None}


def results_json(result: SimilarityResult, html_path: Path | None) -> dict:
    closest: dict[str, tuple[float, Prepared]] = {}
    for pair in result.pairs:
        for mine, other in ((pair.a, pair.b), (pair.b, pair.a)):
            if not mine.document.origin and pair.score > closest.get(mine.document.student_id, (-1.0, None))[0]:
                closest[mine.document.student_id] = (pair.score, other)
    return {
        "assignment_id": result.assignment_id,
        "generated": result.generated,
        "threshold": result.threshold,
        "k": K,
        "explanation": EXPLANATION,
        "html": str(html_path) if html_path else None,
        "corpus": result.corpus_folders,
        "submissions": len(result.students),
        "corpus_submissions": len(result.corpus),
        "pairs": [{
            "a": _who(pair.a), "b": _who(pair.b), "score": round(pair.score, 4),
            "a_in_b": round(pair.a_in_b, 4), "b_in_a": round(pair.b_in_a, 4), "flagged": pair.flagged,
        } for pair in result.pairs],
        # Per student, what a column in the formgrader's submissions list would show.
        "students": {
            prepared.document.student_id: {
                "closest": round(closest[prepared.document.student_id][0], 4) if prepared.document.student_id in closest else 0.0,
                "closest_to": _who(closest[prepared.document.student_id][1]) if prepared.document.student_id in closest else None,
                "flagged": closest.get(prepared.document.student_id, (0.0,))[0] >= result.threshold,
                "answer_tokens": prepared.answer_tokens,
                "solution_share": round(prepared.solution_share, 4),
                "unreadable": prepared.document.unreadable,
            } for prepared in result.students
        },
    }


def _runs(prepared: Prepared, mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive masked tokens that stay in one cell, as (first, last) token positions."""
    runs: list[tuple[int, int]] = []
    for position in np.flatnonzero(mask).tolist():
        if runs and runs[-1][1] == position - 1 and prepared.tokens[position].cell == prepared.tokens[runs[-1][0]].cell:
            runs[-1] = (runs[-1][0], position)
        else:
            runs.append((position, position))
    return runs


def _side(prepared: Prepared, mask: np.ndarray, passage_of) -> str:
    runs = _runs(prepared, mask)
    by_cell: dict[int, list[tuple[int, int, int]]] = {}
    for first, last in runs:
        token = prepared.tokens[first]
        number = passage_of(first, last)
        by_cell.setdefault(token.cell, []).append((token.start, max(prepared.tokens[last].end, token.start), number))
    parts = []
    for cell_number, marks in sorted(by_cell.items()):
        cell = prepared.document.cells[cell_number]
        source, text, cursor = cell.source, [], 0
        for start, end, number in marks:
            if start < cursor:
                start = cursor
            text.append(html.escape(source[cursor:start]))
            colour = _COLOURS[number % len(_COLOURS)]
            text.append(f'<mark style="background:{colour}" title="passage {number + 1}">'
                        f"{html.escape(source[start:end])}</mark>")
            cursor = end
        text.append(html.escape(source[cursor:]))
        name = f"{cell.notebook}, cell {cell.index + 1}" + (f" ({cell.grade_id})" if cell.grade_id else "")
        parts.append(f'<div class="cell"><div class="where">{html.escape(name)}</div><pre>{"".join(text)}</pre></div>')
    return "".join(parts) or "<p>(no matching passage)</p>"


def pair_html(pair: Pair, ignored: np.ndarray | None = None) -> str:
    """Both answers side by side, each passage found in the other highlighted in one colour per passage."""
    mask_a, mask_b = shared_mask(pair.a, pair.b, ignored), shared_mask(pair.b, pair.a, ignored)
    # Number the passages of a; a passage of b takes the number of the passage of a its first shared k-gram is in.
    runs_a = _runs(pair.a, mask_a)
    passage_at = np.full(len(pair.a.tokens), -1)
    for number, (first, last) in enumerate(runs_a):
        passage_at[first:last + 1] = number
    first_position = {}
    for position in np.flatnonzero(contains(pair.b.distinct, pair.a.hashes)).tolist():
        first_position.setdefault(int(pair.a.hashes[position]), position)
    b_shared = contains(pair.a.distinct, pair.b.hashes)

    def passage_of_a(first: int, last: int) -> int:
        return int(passage_at[first])

    def passage_of_b(first: int, last: int) -> int:
        for position in range(max(0, first - K + 1), last + 1):
            if position < len(b_shared) and b_shared[position] and position + K > first:
                return int(passage_at[first_position[int(pair.b.hashes[position])]])
        return 0

    label_a, label_b = (html.escape(prepared.document.label) for prepared in (pair.a, pair.b))
    return (
        f'<section class="pair"><h2 id="{html.escape(_anchor(pair))}">{label_a} and {label_b}: {pair.score:.2f}</h2>\n'
        f"<p>{pair.a_in_b:.0%} of {label_a}'s answer is in passages also in {label_b}'s; "
        f"{pair.b_in_a:.0%} of {label_b}'s is in passages also in {label_a}'s.</p>\n"
        f'<table class="side"><tr><th>{label_a}</th><th>{label_b}</th></tr>\n'
        f"<tr><td>{_side(pair.a, mask_a, passage_of_a)}</td><td>{_side(pair.b, mask_b, passage_of_b)}</td></tr></table>\n"
        "</section>\n")


def _anchor(pair: Pair) -> str:
    return "pair-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{pair.a.document.label}--{pair.b.document.label}")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; padding: 0 1rem; max-width: 110rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
table.side { width: 100%; table-layout: fixed; }
pre { white-space: pre-wrap; word-break: break-word; font-size: 0.85rem; margin: 0.2rem 0 0.8rem; }
.where { color: #666; font-size: 0.8rem; }
mark { padding: 0; }
"""


def write_html(result: SimilarityResult, path: Path) -> Path:
    ignored = result.common
    flagged = result.flagged
    title = f"Similarity: {result.assignment_id}"
    rows = "".join(
        f'<tr><td><a href="#{html.escape(_anchor(pair))}">{html.escape(pair.a.document.label)}</a></td>'
        f"<td>{html.escape(pair.b.document.label)}</td><td>{pair.score:.2f}</td>"
        f"<td>{pair.a_in_b:.0%}</td><td>{pair.b_in_a:.0%}</td></tr>\n" for pair in flagged)
    table = ("<table><thead><tr><th>student</th><th>with</th><th>score</th><th>first's answer in second's</th>"
             f"<th>second's in first's</th></tr></thead>\n<tbody>\n{rows}</tbody></table>\n") if flagged else "<p>No pair reached the threshold.</p>\n"
    leaked = [prepared for prepared in result.students if prepared.solution_share >= SOLUTION_SHARE_SHOWN]
    solution = ("<h2>Answers that are mostly the instructor's solution</h2>\n<p>These passages are taken out before "
                "pairs are compared, so students who all copied a leaked solution show here, not as pairs.</p>\n<ul>"
                + "".join(f"<li>{html.escape(p.document.label)}: {p.solution_share:.0%}</li>" for p in leaked)
                + "</ul>\n") if leaked else ""
    corpus = (f"<p>Also compared with {len(result.corpus)} submission(s) of earlier terms in "
              f"{html.escape(', '.join(result.corpus_folders))} (never with each other).</p>\n") if result.corpus_folders else ""
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"<p>Generated {html.escape(result.generated)} over {len(result.students)} submission(s); pairs scoring "
        f"{result.threshold:.2f} or more are listed.</p>\n<p>{html.escape(EXPLANATION)}</p>\n{corpus}"
        + table + solution + "".join(pair_html(pair, ignored) for pair in flagged) + "</body>\n</html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def write_results(result: SimilarityResult, *, course_dir: Path, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write the HTML page (into ``out_dir``, default the course's ``similarity/`` folder) and the
    JSON results (always in the course's ``similarity/`` folder); return both paths."""
    json_path = results_path(course_dir, result.assignment_id)
    html_path = Path(out_dir or json_path.parent).resolve() / f"{file_stem(result.assignment_id)}.html"
    write_html(result, html_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results_json(result, html_path), indent=1), encoding="utf-8")
    return html_path, json_path
