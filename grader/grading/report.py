"""Report: one HTML page on how an assignment went, for the instructor.

Per assignment: the distribution of scores (after late penalties), the share of graded submissions
with full marks on each autograded test (hardest first: the question to revisit), and the
submissions to look at: tampering found and repaired, and limits or crashes that ended a run, with
the reason the grader gave. Only graded submissions count (:func:`grader.grading.status.graded_submissions`).

The page is ``index.html`` with its PNGs beside it, referenced relatively, so the folder can be
copied or served as is. Plots are drawn on matplotlib's Agg canvas without pyplot, so writing a
report never touches the caller's matplotlib state.
"""

from __future__ import annotations

import datetime
import html
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory

from grader.grading.integrity.policy import zeroed_by_policy
from grader.grading.nbgrader_api import GraderError, load_course_config
from grader.grading.resume import GradedRecord, record_flags
from grader.grading.status import graded_submissions, is_flagged, pending_students

# What each limit status means, for readers who never saw the executor's code.
LIMIT_MEANINGS = {
    "timeout": "a cell ran past its time limit and ignored the interrupt",
    "budget": "the submission ran past its total time budget",
    "memory": "the submission used more memory than allowed",
    "output": "the submission printed more output than allowed",
    "processes": "the submission started too many processes",
    "died": "the process running the submission crashed or exited",
    "error": "the grader itself failed on this submission",
}


@dataclass
class TestPassRate:
    test: str  # grade cell id, prefixed by its notebook when the assignment has several
    passed: int
    graded: int

    @property
    def rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


@dataclass
class AssignmentReport:
    assignment_id: str
    max_score: float
    scores: dict[str, float] = field(default_factory=dict)  # student: score after late penalty
    pass_rates: list[TestPassRate] = field(default_factory=list)  # hardest first
    pending: list[str] = field(default_factory=list)
    flagged: list[GradedRecord] = field(default_factory=list)
    zeroed: set[str] = field(default_factory=set)  # flagged students whose score the policy holds at 0


def assignment_report(gradebook: Gradebook, *, course_dir: Path, assignment_id: str) -> AssignmentReport:
    """Scores, test pass rates and flagged submissions of one assignment's graded submissions."""
    assignment = gradebook.find_assignment(assignment_id)
    report = AssignmentReport(assignment_id, assignment.max_score)
    report.pending = sorted(pending_students(course_dir=course_dir, assignment_id=assignment_id))
    several_notebooks = len(assignment.notebooks) > 1
    rates: dict[str, TestPassRate] = {}
    for student_id, record in sorted(graded_submissions(course_dir=course_dir, assignment_id=assignment_id).items()):
        try:
            submission = gradebook.find_submission(assignment_id, student_id)
        except MissingEntry:  # graded into another gradebook (autograde --db); nothing to read here
            continue
        report.scores[student_id] = max(0.0, submission.score - (submission.late_submission_penalty or 0.0))
        if is_flagged(record):
            report.flagged.append(record)
            if zeroed_by_policy(gradebook, gradebook.course_id, assignment_id, student_id):
                report.zeroed.add(student_id)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.cell.cell_type != "code" or not grade.max_score:
                    continue
                name = f"{notebook.name}: {grade.name}" if several_notebooks else grade.name
                rate = rates.setdefault(name, TestPassRate(name, 0, 0))
                rate.graded += 1
                # A manual override counts as the instructor's final word, as in the gradebook.
                rate.passed += grade.score >= grade.max_score - 1e-9
    report.pass_rates = sorted(rates.values(), key=lambda rate: (rate.rate, rate.test))
    return report


def _file_stem(assignment_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", assignment_id)


def plot_scores(report: AssignmentReport, path: Path) -> None:
    figure = Figure(figsize=(6, 3.2), layout="constrained")
    axes = figure.subplots()
    top = max(report.max_score, max(report.scores.values(), default=0.0))
    # One bar per point when there are few points, so a score is easy to read off.
    edges = np.arange(-0.5, top + 1.0) if top <= 20 else np.linspace(0.0, top, 21)
    axes.hist(list(report.scores.values()), bins=edges, color="#4c72b0", edgecolor="white")
    axes.set_xlabel(f"score after late penalty (out of {report.max_score:g})")
    axes.set_ylabel("submissions")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set_title(f"{report.assignment_id}: {len(report.scores)} graded")
    figure.savefig(path, format="png", dpi=100)


def plot_pass_rates(report: AssignmentReport, path: Path) -> None:
    figure = Figure(figsize=(6, 1.2 + 0.35 * len(report.pass_rates)), layout="constrained")
    axes = figure.subplots()
    axes.barh([rate.test for rate in report.pass_rates], [rate.rate for rate in report.pass_rates], color="#dd8452")
    axes.invert_yaxis()  # hardest on top
    axes.set_xlim(0, 1)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("graded submissions with full marks")
    axes.set_title(f"{report.assignment_id}: tests, hardest first")
    figure.savefig(path, format="png", dpi=100)


@dataclass(frozen=True)
class Markup:
    """HTML already escaped, to put in a table cell as is."""

    html: str


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; cells are escaped here, except those given as ``Markup``."""
    def cell(value) -> str:
        return value.html if isinstance(value, Markup) else html.escape(str(value))

    head = "".join(f"<th>{html.escape(title)}</th>" for title in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(value)}</td>" for value in row) + "</tr>\n" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def _image(filename: str, alt: str) -> str:
    return f'<img src="{html.escape(quote(filename))}" alt="{html.escape(alt)}">'


def _assignment_section(report: AssignmentReport, out_dir: Path) -> str:
    title = html.escape(report.assignment_id)
    parts = [f'<section>\n<h2 id="{html.escape(_file_stem(report.assignment_id))}">{title}</h2>\n']
    if report.pending:
        parts.append(f"<p>Not graded yet: {html.escape(', '.join(report.pending))}.</p>\n")
    if not report.scores:
        parts.append("<p>No graded submissions yet.</p>\n</section>\n")
        return "".join(parts)
    scores_png, tests_png = f"scores-{_file_stem(report.assignment_id)}.png", f"tests-{_file_stem(report.assignment_id)}.png"
    plot_scores(report, out_dir / scores_png)
    parts.append(_image(scores_png, f"histogram of the scores of {report.assignment_id}") + "\n")
    if report.pass_rates:
        plot_pass_rates(report, out_dir / tests_png)
        parts.append(_image(tests_png, f"share of full marks per test of {report.assignment_id}") + "\n")
        parts.append(_table(
            ["test", "full marks", "share"],
            [[rate.test, f"{rate.passed} of {rate.graded}", f"{rate.rate:.0%}"] for rate in report.pass_rates],
        ))
    parts.append("</section>\n")
    return "".join(parts)


def _summary(reports: list[AssignmentReport]) -> str:
    rows = []
    for report in reports:
        scores = list(report.scores.values())
        rows.append([
            report.assignment_id, len(scores), len(report.pending), len(report.flagged),
            f"{statistics.mean(scores):.2f}" if scores else "-",
            f"{statistics.median(scores):.2f}" if scores else "-",
            f"{report.max_score:g}",
        ])
    return _table(["assignment", "graded", "not graded yet", "flagged", "mean", "median", "out of"], rows)


def _flagged(reports: list[AssignmentReport]) -> str:
    flagged = [
        [report.assignment_id, record.student_id, record.status,
         Markup("<ul>" + "".join(f"<li>{html.escape(flag.kind)}: {html.escape(flag.reason)}</li>"
                                 for flag in record_flags(record)) + "</ul>"),
         "yes" if record.student_id in report.zeroed else "no"]
        for report in reports for record in report.flagged
    ]
    limits = [
        [report.assignment_id, record.student_id, record.status, record.reason,
         LIMIT_MEANINGS.get(record.status, "")]
        for report in reports for record in report.flagged if record.status != "ok"
    ]
    parts = ['<h2 id="flagged">Flagged submissions</h2>\n',
             "<p>Check these before trusting their scores. Tampered notebooks were graded with the original "
             "tests and cells put back, and files that were not regular files were left out; the student's "
             "files are unchanged. A score held at 0 (the course's <code>flagged_policy</code> is "
             "<code>zero</code>) is restored by editing it in the formgrader.</p>\n"]
    parts.append(_table(["assignment", "student", "status", "flags", "score held at 0"], flagged)
                 if flagged else "<p>None.</p>\n")
    parts.append("<h3>Limits and crashes</h3>\n<p>Cells after the one that hit the limit were not run.</p>\n")
    parts.append(_table(["assignment", "student", "status", "reason", "meaning"], limits) if limits else "<p>None.</p>\n")
    return "".join(parts)


def _similarity(course_dir: Path, assignment_ids: list[str], out_dir: Path) -> str:
    """Flagged pairs of ``grader similarity``'s last run (its JSON in the course directory), each
    assignment's side-by-side page copied beside the report."""
    import json
    import shutil

    from grader.grading.similarity.output import EXPLANATION, results_path

    parts = ['<h2 id="similarity">Similarity</h2>\n', f"<p>{html.escape(EXPLANATION)}</p>\n"]
    for assignment_id in assignment_ids:
        path = results_path(course_dir, assignment_id)
        if not path.is_file():
            parts.append(f"<p>{html.escape(assignment_id)}: not computed; run "
                         f"<code>grader similarity {html.escape(assignment_id)}</code>.</p>\n")
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        link = ""
        if data.get("html") and Path(data["html"]).is_file():
            page = f"similarity-{_file_stem(assignment_id)}.html"
            shutil.copyfile(data["html"], out_dir / page)
            link = f' (<a href="{html.escape(quote(page))}">passages side by side</a>)'
        flagged = [pair for pair in data["pairs"] if pair["flagged"]]
        parts.append(f"<h3>{html.escape(assignment_id)}</h3>\n<p>Computed {html.escape(data['generated'])} over "
                     f"{data['submissions']} submission(s); {len(flagged)} pair(s) scored {data['threshold']:g} or more{link}.</p>\n")

        def who(side: dict) -> str:
            return side["student_id"] + (f" ({side['corpus']})" if side["corpus"] else "")

        if flagged:
            parts.append(_table(["student", "with", "score"],
                                [[who(pair["a"]), who(pair["b"]), f"{pair['score']:.2f}"] for pair in flagged]))
    return "".join(parts)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td ul { margin: 0; padding-left: 1.1rem; }
img { display: block; max-width: 100%; margin: 0.5rem 0; }
"""


def write_report(*, course_dir: Path, out_dir: Path, assignments: list[str] | None = None) -> Path:
    """Write ``index.html`` and its PNGs into ``out_dir`` for ``assignments`` (default: all in the
    gradebook); return the path of ``index.html``."""
    course_dir, out_dir = Path(course_dir).resolve(), Path(out_dir).resolve()
    config = load_course_config(course_dir)
    coursedir = CourseDirectory(config=config)
    out_dir.mkdir(parents=True, exist_ok=True)
    with Gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
        known = [assignment.name for assignment in gradebook.assignments]
        unknown = sorted(set(assignments or []) - set(known))
        if unknown:
            raise GraderError(f"{', '.join(unknown)}: not in the gradebook of {course_dir}")
        reports = [assignment_report(gradebook, course_dir=course_dir, assignment_id=name) for name in assignments or known]
    title = f"Grading report: {coursedir.course_id}"
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>Generated {generated}. Scores are after late penalties; "
        "only submissions whose grading finished are counted.</p>\n"
        + _summary(reports)
        + "".join(_assignment_section(report, out_dir) for report in reports)
        + _flagged(reports)
        + _similarity(course_dir, [report.assignment_id for report in reports], out_dir)
        + "</body>\n</html>\n"
    )
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
