"""`grader autograde` writes the same gradebook rows and autograded files as `nbgrader autograde`,
on the fixture cases, on honest submissions written the way students write notebooks
(tests/files/honest), and on every scenario of nbgrader's own autograde tests; and it resumes after
kill -9."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from grader.grading.autograde import autograde_assignment
from grader.grading.gradebook import grade_rows
from tests.grading.test_autograde import ASSIGNMENT, FILES, make_fixture_course
from tests.support.processes import new_tag, processes_with_tag

pytestmark = pytest.mark.slow

# Every case nbgrader itself grades (it cannot survive a dead kernel, and we repair deletions it
# would score differently); a cell timeout of 3 s makes nbgrader interrupt the infinite loop too.
SAME_AS_NBGRADER = [
    "solution", "blank", "wrong", "raises", "infinite-loop",
    "tampered-tests", "changed-cell-type", "metadata-changed", "nbformat3",
]


def _set_cell_timeout(course, seconds: int) -> None:
    config = course.course_dir / "nbgrader_config.py"
    config.write_text(config.read_text() + f"c.Execute.timeout = {seconds}\n")


def _all_rows(course, students):
    return {
        student: [
            (row.notebook, row.cell, row.auto_score, row.manual_score, row.max_score)
            for row in grade_rows(course.gradebook_url, course_id=course.course_id, assignment_id=ASSIGNMENT, student_id=student)
        ]
        for student in students
    }


def test_every_gradebook_row_matches_nbgrader_autograde(tmp_path):
    ours = make_fixture_course(tmp_path / "ours", SAME_AS_NBGRADER)
    theirs = make_fixture_course(tmp_path / "theirs", SAME_AS_NBGRADER)
    for course in (ours, theirs):
        _set_cell_timeout(course, 3)
    outcomes = autograde_assignment(course_dir=ours.course_dir, assignment_id=ASSIGNMENT, workers=2, preload=["numpy"], progress=False)
    assert all(outcome.success for outcome in outcomes)
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force"],
        cwd=theirs.course_dir, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = _all_rows(theirs, SAME_AS_NBGRADER)
    assert all(expected.values())  # nbgrader graded every one
    assert _all_rows(ours, SAME_AS_NBGRADER) == expected


def _slow_solution(course, students):
    slow = nbformat.read(FILES / "submissions" / "solution.ipynb", as_version=4)
    answer = next(c for c in slow.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "square_answer")
    answer.source += "\nimport time\ntime.sleep(1.5)"
    for student in students:
        folder = course.course_dir / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(slow, folder / f"{ASSIGNMENT}.ipynb")
        (folder / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")


def _graded_count(course_dir: Path) -> int:
    database = course_dir / ".grader" / "progress.sqlite"
    if not database.exists():
        return 0
    with sqlite3.connect(database) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM graded").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_kill_9_mid_batch_then_rerun_equals_an_uninterrupted_run(tmp_path):
    students = [f"student{n:02d}" for n in range(8)] + ["wrong", "raises"]
    interrupted = make_fixture_course(tmp_path / "interrupted", ["wrong", "raises"])
    reference = make_fixture_course(tmp_path / "reference", ["wrong", "raises"])
    for course in (interrupted, reference):
        _slow_solution(course, students[:8])
    autograde_assignment(course_dir=reference.course_dir, assignment_id=ASSIGNMENT, workers=2, preload=["numpy"], progress=False)

    name, tag = new_tag()
    env = dict(os.environ, **{name: tag})
    grader = subprocess.Popen(
        [sys.executable, "-m", "grader.cli", "--course-dir", str(interrupted.course_dir), "autograde", ASSIGNMENT,
         "--workers", "2", "--preload", "numpy"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while _graded_count(interrupted.course_dir) < 3 and time.monotonic() < deadline and grader.poll() is None:
        time.sleep(0.05)
    assert grader.poll() is None, "the batch finished before it could be interrupted"
    os.kill(grader.pid, signal.SIGKILL)
    grader.wait()
    graded_before = _graded_count(interrupted.course_dir)
    assert 3 <= graded_before < len(students)

    # The executor dies with the grader: nothing it started is left running.
    deadline = time.monotonic() + 15
    while processes_with_tag(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with_tag(tag) == []

    outcomes = autograde_assignment(course_dir=interrupted.course_dir, assignment_id=ASSIGNMENT, workers=2, preload=["numpy"], progress=False)
    assert sum(outcome.skipped for outcome in outcomes) == graded_before
    assert all(outcome.success for outcome in outcomes)
    assert _all_rows(interrupted, students) == _all_rows(reference, students)


# --- Comparing two courses graded by `grader` and by `nbgrader autograde` ---------------------------

def _nbgrader_env() -> dict[str, str]:
    """nbgrader's kernels get the environment a course's nbgrader run gives them: no MPLBACKEND
    (conftest sets Agg for the tests' own plots; a kernel picks the inline backend) and no
    PYTEST_CURRENT_TEST (with it ipykernel stops forwarding what is written to fds 1 and 2)."""
    env = {name: value for name, value in os.environ.items() if name not in ("MPLBACKEND", "PYTEST_CURRENT_TEST")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _run_nbgrader_autograde(course_dir: Path, assignment: str = "*") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", assignment, "--force"],
        cwd=course_dir, capture_output=True, text=True, env=_nbgrader_env(),
    )


def gradebook_snapshot(db_url: str, course_id: str) -> dict:
    """Every row autograde writes: per submission its lateness, per notebook its late penalty and
    per cell (notebook, cell, auto_score, manual_score, max_score, needs_manual_grade) and comments."""
    from nbgrader.api import Gradebook

    snapshot = {}
    with Gradebook(db_url, course_id=course_id) as gradebook:
        for assignment in gradebook.assignments:
            for submission in assignment.submissions:
                notebooks = {}
                for notebook in submission.notebooks:
                    notebooks[notebook.name] = {
                        "late_submission_penalty": notebook.late_submission_penalty,
                        "grades": sorted(
                            (notebook.name, grade.name, grade.auto_score, grade.manual_score, grade.max_score, grade.needs_manual_grade)
                            for grade in notebook.grades
                        ),
                        "comments": sorted((comment.name, comment.auto_comment, comment.manual_comment) for comment in notebook.comments),
                    }
                snapshot[(assignment.name, submission.student.id)] = {
                    "total_seconds_late": submission.total_seconds_late,
                    "notebooks": notebooks,
                }
    return snapshot


def _graded_cell_outputs(path: Path) -> dict:
    from tests.grading.executor.test_fidelity import normalise

    notebook = nbformat.read(path, as_version=4)
    return {
        cell.metadata["nbgrader"].get("grade_id"): normalise(cell.get("outputs", []))
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade")
    }


def autograded_snapshot(course_dir: Path) -> dict:
    """Every file under autograded/: its mode, and its bytes (notebooks: their graded cells' outputs,
    normalised for volatile details)."""
    root = course_dir / "autograded"
    snapshot = {}
    for path in sorted(root.rglob("*")) if root.exists() else []:
        if not path.is_file():
            continue
        mode = oct(path.stat().st_mode & 0o7777)
        content = _graded_cell_outputs(path) if path.suffix == ".ipynb" else path.read_bytes()
        snapshot[str(path.relative_to(root))] = (mode, content)
    return snapshot


def _differences(ours: dict, theirs: dict) -> list[str]:
    lines = []
    for key in sorted(set(ours) | set(theirs), key=str):
        if ours.get(key) != theirs.get(key):
            lines.append(f"{key}:\n  grader:   {str(ours.get(key, '<missing>'))[:1500]}\n  nbgrader: {str(theirs.get(key, '<missing>'))[:1500]}")
    return lines


# --- Honest submissions (tests/files/honest) -------------------------------------------------------

HONEST_DIR = FILES / "honest"
HONEST = sorted(path.name for path in HONEST_DIR.iterdir() if path.is_dir())
# The course's per-cell timeout as `grader init` writes it (ExecutePreprocessor), at a test-sized
# 4 s; the lower-priority NotebookClient.timeout of 1 s must not apply (nor Execute's own 30 s).
HONEST_TIMEOUTS = "c.NotebookClient.timeout = 1\nc.ExecutePreprocessor.timeout = 4\n"


def _honest_course(root: Path):
    course = make_fixture_course(root, [])
    config = course.course_dir / "nbgrader_config.py"
    config.write_text(config.read_text() + HONEST_TIMEOUTS)
    for case in HONEST:
        folder = course.course_dir / "submitted" / case / ASSIGNMENT
        shutil.copytree(HONEST_DIR / case, folder)
        (folder / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")
    return course


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    root = tmp_path_factory.mktemp("honest")
    ours, theirs = _honest_course(root / "ours"), _honest_course(root / "theirs")
    outcomes = autograde_assignment(course_dir=ours.course_dir, assignment_id=ASSIGNMENT, workers=2,
                                    preload=["numpy", "matplotlib.pyplot"], progress=False)
    result = _run_nbgrader_autograde(theirs.course_dir, ASSIGNMENT)
    assert result.returncode == 0, result.stderr[-3000:]
    return ours, theirs, {outcome.student_id: outcome for outcome in outcomes}


def test_honest_submissions_are_all_graded(honest):
    ours, theirs, outcomes = honest
    assert sorted(outcomes) == HONEST
    assert [name for name, outcome in outcomes.items() if not outcome.success] == []
    # Sanity: the cases mean what they say under nbgrader (a kernel) itself.
    rows = gradebook_snapshot(theirs.gradebook_url, theirs.course_id)
    scores = {student: {grade[1]: grade[2] for grade in entry["notebooks"][ASSIGNMENT]["grades"] if grade[1].startswith("test_")}
              for (_, student), entry in rows.items()}
    full = {"test_positive": 1.0, "test_negative": 2.0, "test_arrays": 1.0}
    for case in ("progress-bars", "log-file", "plots", "writes-files", "widgets", "long-prints", "magics",
                 "stopped-early", "slow-in-time", "quiet-warnings"):
        assert scores[case] == full, case
    assert scores["warnings"] == dict.fromkeys(full, 0.0)
    assert scores["asks-for-input"] == dict.fromkeys(full, 0.0)
    assert scores["too-slow"] == dict(full, test_positive=0.0)
    assert scores["interrupt-caught-in-test"] == dict(full, test_positive=0.0)


def test_honest_submissions_score_as_nbgrader_scores_them(honest):
    ours, theirs, _ = honest
    differences = _differences(gradebook_snapshot(ours.gradebook_url, ours.course_id),
                               gradebook_snapshot(theirs.gradebook_url, theirs.course_id))
    assert differences == [], "\n".join(differences)


@pytest.mark.parametrize("case", HONEST)
def test_honest_autograded_files_match_nbgrader(honest, case):
    """Same files in autograded/ (those the notebook wrote included: a saved figure, results, an
    appended log), same bytes, same outputs in every graded cell."""
    ours, theirs, _ = honest
    prefix = f"{case}/"
    mine = {name: value for name, value in autograded_snapshot(ours.course_dir).items() if name.startswith(prefix)}
    expected = {name: value for name, value in autograded_snapshot(theirs.course_dir).items() if name.startswith(prefix)}
    differences = _differences(mine, expected)
    assert differences == [], "\n".join(differences)


# --- Every scenario of nbgrader's own autograde tests ---------------------------------------------
# nbgrader/tests/apps/test_nbgrader_autograde.py, each test's first `nbgrader autograde` run (the
# re-runs there test nbgrader's own skip/--force/--notebook bookkeeping, not grading). A scenario is
# one assignment; scenarios that need the same course-wide config share a course, and each course
# is graded by one `nbgrader autograde "*"` run and one `autograde_assignment` per assignment.

NBGRADER_FILES = Path(__import__("nbgrader").__file__).parent / "tests" / "apps" / "files"
DUE = "2015-02-02 14:58:23.948203 America/Los_Angeles"
ON_TIME, ONE_HOUR_LATE, FOUR_HOURS_LATE = DUE, "2015-02-02 15:58:23.948203 America/Los_Angeles", "2015-02-02 18:58:23.948203 America/Los_Angeles"
EARLY = "2015-02-01 14:58:23.948203 America/Los_Angeles"
HIDDEN_STUB = {"ClearSolutions": {"code_stub": {"python": "# YOUR CODE HERE"}}}
ODD_KERNEL_STUB = {"ClearSolutions": {"code_stub": {"python": "## Answer", "blah": "## Answer"}}}


def nbfile(name: str) -> bytes:
    return (NBGRADER_FILES / name).read_bytes()


def empty_notebook(kernel: str | None = None) -> bytes:
    notebook = nbformat.v4.new_notebook()
    if kernel is not None:
        notebook.metadata.kernelspec = {"display_name": "kernel", "language": kernel, "name": kernel}
    return nbformat.writes(notebook).encode()


RELEASED = object()  # a submission that is the released notebook, unchanged


@dataclass
class Scenario:
    course: str  # scenarios of one course share its config (see COURSE_CONFIG) and one nbgrader run
    source: dict  # path in source/ASSIGNMENT -> bytes
    submitted: dict  # student -> {path -> bytes or RELEASED}
    generate: dict = field(default_factory=dict)  # config for generate_assignment only


U, C = "submitted-unchanged.ipynb", "submitted-changed.ipynb"
SCENARIOS = {
    "missing_student": Scenario("default", {"p1.ipynb": nbfile(C)}, {"baz": {"p1.ipynb": nbfile(C)}}),
    "grade": Scenario("default", {"p1.ipynb": nbfile(U)}, {"foo": {"p1.ipynb": nbfile(U)}, "bar": {"p1.ipynb": nbfile(C)}}),
    "grade_autotest": Scenario("default", {"p1.ipynb": nbfile("autotest-simple.ipynb")}, {
        "foo": {"p1.ipynb": nbfile("autotest-simple-unchanged.ipynb")}, "bar": {"p1.ipynb": nbfile("autotest-simple-changed.ipynb")}}),
    "grade_hashed_autotest": Scenario("default", {"p1.ipynb": nbfile("autotest-hashed.ipynb")}, {
        "foo": {"p1.ipynb": nbfile("autotest-hashed-unchanged.ipynb")}, "bar": {"p1.ipynb": nbfile("autotest-hashed-changed.ipynb")}}),
    "grade_complex_autotest": Scenario("default", {"p1.ipynb": nbfile("autotest-multi.ipynb")}, {
        "foo": {"p1.ipynb": nbfile("autotest-multi-unchanged.ipynb")}, "bar": {"p1.ipynb": nbfile("autotest-multi-changed.ipynb")}}),
    "showtraceback_exploit": Scenario("no-timeout", {"p1.ipynb": nbfile(U)}, {
        "foo": {"p1.ipynb": nbfile(U)}, "bar": {"p1.ipynb": nbfile(C)},
        "spam": {"p1.ipynb": nbfile("submitted-cheat-attempt.ipynb")},
        "eggs": {"p1.ipynb": nbfile("submitted-cheat-attempt-alternative.ipynb")}}),
    "student_id_exclude": Scenario("exclude+clear-metadata", {"p1.ipynb": nbfile(U)}, {
        "foo": {"p1.ipynb": nbfile(U)}, "bar": {"p1.ipynb": nbfile(C)}, "baz": {"p1.ipynb": nbfile(C)}}),
    "grade_timestamp": Scenario("default", {"p1.ipynb": nbfile(U)}, {
        "foo": {"p1.ipynb": nbfile(U), "timestamp.txt": ONE_HOUR_LATE.encode()},
        "bar": {"p1.ipynb": nbfile(C), "timestamp.txt": EARLY.encode()}}),
    "grade_empty_timestamp": Scenario("default", {"p1.ipynb": nbfile(U)}, {
        "foo": {"p1.ipynb": nbfile(U), "timestamp.txt": b""},
        "bar": {"p1.ipynb": nbfile(C), "timestamp.txt": b"But I want to be a timestamp string :("}}),
    "late_submission_penalty_none": Scenario("default", {"p1.ipynb": nbfile(U)}, {
        "foo": {"p1.ipynb": nbfile(U), "timestamp.txt": ON_TIME.encode()},
        "bar": {"p1.ipynb": nbfile(C), "timestamp.txt": ONE_HOUR_LATE.encode()}}),
    "late_submission_penalty_zero": Scenario("late-zero", {"p1.ipynb": nbfile(U)}, {
        "foo": {"p1.ipynb": nbfile(U), "timestamp.txt": ON_TIME.encode()},
        "bar": {"p1.ipynb": nbfile(C), "timestamp.txt": ONE_HOUR_LATE.encode()}}),
    "late_submission_penalty_plugin": Scenario("late-plugin", {"p1.ipynb": nbfile(U)}, {
        "foo": {"p1.ipynb": nbfile(U), "timestamp.txt": FOUR_HOURS_LATE.encode()},
        "bar": {"p1.ipynb": nbfile(C), "timestamp.txt": ONE_HOUR_LATE.encode()}}),
    # test_force and test_filter_notebook share this first run: extra files, a .pyc left out.
    "force": Scenario("default", {"p1.ipynb": nbfile(U), "foo.txt": b"foo", "data/bar.txt": b"bar"}, {
        "foo": {"p1.ipynb": nbfile(U), "foo.txt": b"foo", "data/bar.txt": b"bar", "blah.pyc": b"asdf"}}),
    "grade_overwrite_files": Scenario("default", {"p1.ipynb": nbfile(U), "data.csv": b"some,data\n", "helper.py": b"print('hello!')\n"}, {
        "foo": {"p1.ipynb": nbfile(U), "timestamp.txt": ONE_HOUR_LATE.encode(), "data.csv": b"some,other,data\n",
                "helper.py": b"print('this is different!')\n"}}),
    "grade_overwrite_files_subdirs": Scenario("default", {
        "p1.ipynb": nbfile(U), "subdir/data.csv": b"some,data\n", "subdir/helper.py": b"print('hello!')\n"}, {
        "foo": {"p1.ipynb": nbfile(U), "timestamp.txt": ONE_HOUR_LATE.encode(), "subdir/data.csv": b"some,other,data\n",
                "subdir/helper.py": b"print('this is different!')\n"}}),
    "side_effects": Scenario("default", {"p1.ipynb": nbfile("side-effects.ipynb")}, {"foo": {"p1.ipynb": nbfile("side-effects.ipynb")}}),
    "skip_extra_notebooks": Scenario("default", {"p1.ipynb": nbfile(U)}, {
        "foo": {"p1 copy.ipynb": nbfile(U), "p1.ipynb": nbfile(C)}}),
    "permissions": Scenario("default", {"foo.ipynb": empty_notebook(), "foo.txt": b"foo"}, {"foo": {"foo.ipynb": empty_notebook()}}),
    "permissions_groupshared": Scenario("groupshared", {"foo.ipynb": empty_notebook(), "foo.txt": b"foo"}, {
        "foo": {"foo.ipynb": empty_notebook()}}),
    "custom_permissions": Scenario("permissions-644", {"foo.ipynb": empty_notebook(), "foo.txt": b"foo"}, {
        "foo": {"foo.ipynb": empty_notebook()}}),
    "force_single_notebook": Scenario("exclude+clear-metadata", {"p1.ipynb": nbfile("test.ipynb"), "p2.ipynb": nbfile("test.ipynb")}, {
        "foo": {"p1.ipynb": nbfile("test.ipynb"), "p2.ipynb": nbfile("test.ipynb")}}),
    "update_newer": Scenario("default", {"p1.ipynb": nbfile("test.ipynb")}, {
        "foo": {"p1.ipynb": nbfile("test.ipynb"), "timestamp.txt": ONE_HOUR_LATE.encode()}}),
    "hidden_tests_single_notebook": Scenario("default", {"p1.ipynb": nbfile("test-hidden-tests.ipynb")}, {
        "foo": {"p1.ipynb": RELEASED}}, generate=HIDDEN_STUB),
    "hidden_tests_autotest": Scenario("default", {"p1.ipynb": nbfile("autotest-hidden.ipynb")}, {
        "foo": {"p1.ipynb": nbfile("autotest-hidden-unchanged.ipynb")},
        "bar": {"p1.ipynb": nbfile("autotest-hidden-changed-wrong.ipynb")},
        "baz": {"p1.ipynb": nbfile("autotest-hidden-changed-right.ipynb")}}, generate=HIDDEN_STUB),
    "handle_failure": Scenario("default", {"p1.ipynb": empty_notebook(), "p2.ipynb": empty_notebook()}, {
        "bar": {"p1.ipynb": empty_notebook(), "p2.ipynb": nbfile("test.ipynb")},
        "foo": {"p1.ipynb": empty_notebook(), "p2.ipynb": empty_notebook()}}),
    "handle_failure_single_notebook": Scenario("default", {"p1.ipynb": empty_notebook(), "p2.ipynb": empty_notebook()}, {
        "foo": {"p1.ipynb": empty_notebook(), "p2.ipynb": nbfile("test.ipynb")}}),
    "missing_source_kernelspec": Scenario("default", {"p1.ipynb": empty_notebook()}, {
        "foo": {"p1.ipynb": empty_notebook("python")}, "bar": {"p1.ipynb": empty_notebook("blarg")}}, generate=ODD_KERNEL_STUB),
    "incorrect_source_kernelspec": Scenario("default", {"p1.ipynb": empty_notebook("blah")}, {
        "foo": {"p1.ipynb": empty_notebook("python")}}, generate=ODD_KERNEL_STUB),
    "incorrect_submitted_kernelspec": Scenario("default", {"p1.ipynb": empty_notebook("python")}, {
        "foo": {"p1.ipynb": empty_notebook("blah")}}),
    "no_execute": Scenario("default", {"p1.ipynb": nbfile("test.ipynb")}, {"foo": {"p1.ipynb": nbfile("test-with-output.ipynb")}}),
    "infinite_loop": Scenario("timeout-2", {"p1.ipynb": nbfile("infinite-loop.ipynb")}, {"foo": {"p1.ipynb": nbfile("infinite-loop.ipynb")}}),
    # An empty submission folder: skipped, no gradebook entry, no autograded folder.
    "missing_files": Scenario("default", {"p1.ipynb": empty_notebook()}, {"foo": {"p1.ipynb": empty_notebook()}, "bar": {}}),
    "grade_missing_notebook": Scenario("default", {"p1.ipynb": nbfile(U), "p2.ipynb": nbfile(U)}, {"foo": {"p1.ipynb": nbfile(C)}}),
    "grade_with_validating_envvar": Scenario("default", {"p1.ipynb": nbfile("validating-environment-variable.ipynb")}, {
        "foo": {"p1.ipynb": nbfile("validating-environment-variable.ipynb")}}),
    # test_autograde_timeout: a 5 s cell passes under Execute's default 30 s and fails under 2 s.
    "autograde_timeout": Scenario("default", {"p1.ipynb": nbfile("timeout.ipynb")}, {"foo": {"p1.ipynb": nbfile("timeout.ipynb")}}),
    "autograde_timeout_2s": Scenario("timeout-2", {"p1.ipynb": nbfile("timeout.ipynb")}, {"bar": {"p1.ipynb": nbfile("timeout.ipynb")}}),
}
COURSE_CONFIG = {
    "default": "c.Autograde.exclude_overwriting = {'grade_overwrite_files': ['helper.py'],"
               " 'grade_overwrite_files_subdirs': ['subdir/helper.py']}\n",
    "no-timeout": "c.Execute.timeout = None\n",
    "timeout-2": "c.Execute.timeout = 2\n",
    # Two settings that touch different things, to need one nbgrader run fewer.
    "exclude+clear-metadata": "c.CourseDirectory.student_id_exclude = 'bar,baz'\n"
                              "c.ClearMetadataPreprocessor.enabled = True\nc.ClearMetadataPreprocessor.clear_notebook_metadata = False\n"
                              "c.ClearMetadataPreprocessor.preserve_cell_metadata_mask = [('nbgrader')]\n",
    # Each alone: a setting `grader` once missed must fail only its own scenario.
    "late-zero": "c.LateSubmissionPlugin.penalty_method = 'zero'\n",
    "late-plugin": "c.AssignLatePenalties.plugin_class = 'late_plugin.Blarg'\n",
    "groupshared": "c.CourseDirectory.groupshared = True\n",
    "permissions-644": "c.AutogradeApp.permissions = 644\n",
}
LATE_PLUGIN = '''
from nbgrader.plugins import BasePlugin

class Blarg(BasePlugin):
    def late_submission_penalty(self, student_id, score, total_seconds_late):
        return int(total_seconds_late / 3600)  # a point per hour late
'''
COURSE_ID = "equivalence"


def _write_config(course_dir: Path, course: str) -> None:
    (course_dir / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.CourseDirectory.root = {str(course_dir)!r}\n"
        f"c.CourseDirectory.db_url = {'sqlite:///' + str(course_dir / 'gradebook.db')!r}\n"
        + COURSE_CONFIG[course]
    )


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _build_course(course_dir: Path, course: str, scenarios: dict[str, Scenario]) -> None:
    """The course as nbgrader's tests set it up: assignments with a due date, generated, submitted."""
    from nbgrader.api import Gradebook
    from nbgrader.utils import parse_utc
    from traitlets.config import Config

    from grader.grading.nbgrader_api import checked, open_api

    course_dir.mkdir(parents=True)
    _write_config(course_dir, course)
    shutil.copy(NBGRADER_FILES / "autotests.yml", course_dir / "autotests.yml")
    (course_dir / "late_plugin.py").write_text(LATE_PLUGIN)
    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}", course_id=COURSE_ID) as gradebook:
        for name in scenarios:
            gradebook.update_or_create_assignment(name, duedate=parse_utc(DUE))
    for name, scenario in scenarios.items():
        for relative, content in scenario.source.items():
            _write(course_dir / "source" / name / relative, content)
        with open_api(course_dir, Config(scenario.generate)) as api:
            checked(api.generate_assignment(name), f"generate {name}")
        for student, files in scenario.submitted.items():
            folder = course_dir / "submitted" / student / name
            folder.mkdir(parents=True)
            for relative, content in files.items():
                if content is RELEASED:
                    content = (course_dir / "release" / name / relative).read_bytes()
                _write(folder / relative, content)


@pytest.fixture(scope="module")
def nbgrader_scenarios(tmp_path_factory):
    """{course: (ours, theirs, outcomes, nbgrader's output)} with every scenario graded both ways."""
    import grader.grading.autograde
    from grader.grading.executor.client import Zygote

    root = tmp_path_factory.mktemp("nbgrader-scenarios")
    courses = {}
    # One executor for every assignment (each autograde_assignment would start its own: seconds each).
    shared = Zygote([])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shared, "close", lambda: None)
        patch.setattr(grader.grading.autograde, "_make_backend", lambda *args, **kwargs: shared)
        try:
            for course in sorted({scenario.course for scenario in SCENARIOS.values()}):
                scenarios = {name: scenario for name, scenario in SCENARIOS.items() if scenario.course == course}
                theirs = root / course / "theirs"
                _build_course(theirs, course, scenarios)
                ours = root / course / "ours"
                shutil.copytree(theirs, ours, symlinks=True)
                _write_config(ours, course)
                outcomes = {}
                for name in scenarios:
                    for outcome in autograde_assignment(course_dir=ours, assignment_id=name, workers=2, progress=False):
                        outcomes[(name, outcome.student_id)] = outcome
                result = _run_nbgrader_autograde(theirs)
                courses[course] = (ours, theirs, outcomes, result.stdout + result.stderr)
        finally:
            Zygote.close(shared)
    return courses


# Where `grader` means to differ: nbgrader fails these submissions (a notebook carrying graded cells
# its source does not have: test.ipynb handed in for an empty p2) and leaves them ungraded; issue
# 14 (point 6) wants a tampered notebook repaired from the release, graded and flagged instead.
REPAIRED_NOT_FAILED = {("handle_failure", "bar"), ("handle_failure_single_notebook", "foo")}


# Where the error shown may differ, not the verdict: a submission that sets InteractiveShell.showtraceback
# to None makes the kernel report its own failure to call it (TypeError) instead of the cell's error;
# `grader` restores the shell's traceback display before instructor cells and shows the real one.
ERROR_TEXT_MAY_DIFFER = {("showtraceback_exploit", "eggs")}


def _errors_only(content):
    """A notebook's graded outputs with each error reduced to the fact that there was one."""
    return {cell: dict(outputs, outputs=[("error",) if output[0] == "error" else output for output in outputs["outputs"]])
            for cell, outputs in content.items()}


def _scenario_view(snapshot: dict, name: str, *, files: bool) -> dict:
    if files:  # autograded/STUDENT/ASSIGNMENT/...
        view = {}
        for key, (mode, content) in snapshot.items():
            student, assignment = key.split(os.sep)[:2]
            if assignment != name or (name, student) in REPAIRED_NOT_FAILED:
                continue
            if (name, student) in ERROR_TEXT_MAY_DIFFER and key.endswith(".ipynb"):
                content = _errors_only(content)
            view[key] = (mode, content)
        return view
    return {key: value for key, value in snapshot.items() if key[0] == name}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_nbgrader_scenario_grades_and_files_match(nbgrader_scenarios, name):
    ours, theirs, outcomes, log = nbgrader_scenarios[SCENARIOS[name].course]
    rows = _differences(_scenario_view(gradebook_snapshot(f"sqlite:///{ours / 'gradebook.db'}", COURSE_ID), name, files=False),
                        _scenario_view(gradebook_snapshot(f"sqlite:///{theirs / 'gradebook.db'}", COURSE_ID), name, files=False))
    files = _differences(_scenario_view(autograded_snapshot(ours), name, files=True),
                         _scenario_view(autograded_snapshot(theirs), name, files=True))
    mine = {student: (o.success, o.status, o.error[-300:]) for (assignment, student), o in outcomes.items() if assignment == name}
    # Which submissions failed (no grade): nbgrader logs each; ours reports it in the outcome. An
    # empty submission folder is no failure for either (nbgrader skips it with a warning).
    failed = {student for assignment, student in re.findall(r"error processing assignment '(.+?)' for student '(.+?)'", log)
              if assignment == name}
    repaired = {student for assignment, student in REPAIRED_NOT_FAILED if assignment == name}
    assert repaired <= failed, f"nbgrader no longer fails {sorted(repaired - failed)}"
    assert all(mine[student][0] for student in repaired), f"grader left a repairable submission ungraded: {mine}"
    failed -= repaired
    failures = [] if {student for student, (success, *_) in mine.items() if not success} == failed else [
        f"failed submissions: grader {sorted(s for s, (ok, *_) in mine.items() if not ok)}, nbgrader {sorted(failed)}"]
    assert rows + files + failures == [], "\n".join(rows + files + failures) + f"\ngrader's outcomes: {mine}\nnbgrader's log:\n{log[-4000:]}"
