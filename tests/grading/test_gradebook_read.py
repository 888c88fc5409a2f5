"""The nbgrader-free readers of ``grader status`` give what nbgrader's own API gives.

grader.grading.gradebook_read (SQL on nbgrader's tables), grader.grading.course_config (the
course config read as data) and grader.grading.course_folders (the folder listings) are each
compared with nbgrader on the same course: a gradebook built with nbgrader's API (every kind of
score, task cells, extra credit, late penalties, a policy zeroing; SQLite and PostgreSQL), the
autograded courses of test_export.py and test_policy.py, and configs nbgrader's loader reads.
And ``grader status`` run as a command never imports nbgrader, traitlets or jsonschema.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook, MissingEntry

from grader.grading.course_config import CourseConfig, read_course_config
from grader.grading.course_dir import Course, prepare_course_dir
from grader.grading.course_folders import released_assignments, source_assignments, submitted_students
from grader.grading.gradebook_read import POLICY_MARK, open_gradebook
from grader.grading.integrity.policy import MARK, zeroed_by_policy
from grader.grading.nbgrader_api import load_course_config, open_api
from tests.grading.test_autograde import ASSIGNMENT
from tests.support.postgres import running_postgres, server_binaries

REPOSITORY = Path(__file__).resolve().parents[2]


def nbgrader_rows(db_url: str, course_id: str, assignment_id: str) -> tuple[float | None, dict[str, tuple]]:
    """(max score, {student: (score, max score, late penalty, needs manual grade, zeroed)}) as
    nbgrader's ORM computes them."""
    with Gradebook(db_url, course_id=course_id) as gradebook:
        try:
            assignment = gradebook.find_assignment(assignment_id)
        except MissingEntry:
            return None, {}
        rows = {}
        for submission in assignment.submissions:
            rows[submission.student_id] = (
                submission.score, submission.max_score, submission.late_submission_penalty or 0.0,
                submission.needs_manual_grade, zeroed_by_policy(gradebook, course_id, assignment_id, submission.student_id),
            )
        return assignment.max_score, rows


def reader_rows(db_url: str, course_id: str, root: str, assignment_id: str) -> tuple[float | None, dict[str, tuple]]:
    with open_gradebook(db_url, course_id=course_id, root=root) as gradebook:
        rows = {student: (row.score, row.max_score, row.late_penalty, row.needs_manual_grade, row.zeroed_by_policy)
                for student, row in gradebook.submissions(assignment_id).items()}
        return gradebook.max_score(assignment_id), rows


def nbgrader_duedates(db_url: str, course_id: str) -> dict:
    with Gradebook(db_url, course_id=course_id) as gradebook:
        return {assignment.name: assignment.duedate for assignment in gradebook.assignments}


def assert_same_gradebook(db_url: str, course_id: str, root: str, assignments: list[str]) -> None:
    with open_gradebook(db_url, course_id=course_id, root=root) as gradebook:
        assert gradebook.duedates() == nbgrader_duedates(db_url, course_id)
    for assignment_id in assignments:
        assert reader_rows(db_url, course_id, root, assignment_id) == nbgrader_rows(db_url, course_id, assignment_id)


def test_policy_mark_is_the_policy_modules():
    assert POLICY_MARK == MARK


# --- a gradebook with every kind of score, built with nbgrader's API ----------------------------


def build_gradebook(db_url: str, course_id: str = "course101") -> None:
    """Two notebooks of graded code, graded markdown and a task; students with auto scores, manual
    overrides, extra credit, late penalties, a policy zeroing and one with no grades at all."""
    with Gradebook(db_url, course_id=course_id) as gradebook:
        gradebook.add_assignment("hw1", duedate="2026-11-20 12:00:00.250000 UTC")
        gradebook.add_assignment("hw2")  # no due date, no notebooks: max score 0
        gradebook.add_assignment("empty")
        for notebook in ("nb1", "nb2"):
            gradebook.add_notebook(notebook, "hw1")
            gradebook.add_grade_cell("code", notebook, "hw1", max_score=2.0, cell_type="code")
            gradebook.add_grade_cell("written", notebook, "hw1", max_score=1.5, cell_type="markdown")
            gradebook.add_solution_cell("written", notebook, "hw1")
            gradebook.add_task_cell("task", notebook, "hw1", max_score=0.75, cell_type="markdown")
        for student in ("auto", "manual", "extra", "late", "zeroed", "reviewed", "blank", "hw2-only"):
            gradebook.add_student(student)
        for student in ("auto", "manual", "extra", "late", "zeroed", "reviewed", "blank"):
            gradebook.add_submission("hw1", student)
        gradebook.add_submission("hw2", "hw2-only")

        def grade(cell: str, notebook: str, student: str, **values) -> None:
            found = gradebook.find_grade(cell, notebook, "hw1", student)
            for name, value in values.items():
                setattr(found, name, value)

        for student in ("auto", "manual", "extra", "late", "zeroed", "reviewed"):
            for notebook in ("nb1", "nb2"):
                grade("code", notebook, student, auto_score=1.25 if notebook == "nb1" else 2.0, needs_manual_grade=False)
        grade("written", "nb1", "manual", manual_score=1.0, needs_manual_grade=False)
        grade("code", "nb2", "manual", manual_score=0.5)  # an override of the autograder
        grade("task", "nb2", "manual", manual_score=0.75, needs_manual_grade=False)
        grade("code", "nb1", "extra", extra_credit=0.5)
        grade("written", "nb2", "extra", manual_score=1.5, extra_credit=0.25, needs_manual_grade=False)
        for notebook, penalty in (("nb1", 0.5), ("nb2", 0.25)):
            gradebook.find_submission_notebook(notebook, "hw1", "late").late_submission_penalty = penalty
        # The zero policy's mark: "zeroed" still at 0; "reviewed" restored by the instructor;
        # "manual" has the words but not the mark's case.
        for student, manual in (("zeroed", 0.0), ("reviewed", 2.0)):
            for notebook in ("nb1", "nb2"):
                grade("code", notebook, student, manual_score=manual, needs_manual_grade=manual == 0.0)
            gradebook.find_comment("written", "nb1", "hw1", student).manual_comment = f"Fine.\n\n{MARK} tamper: x"
        gradebook.find_comment("written", "nb2", "hw1", "manual").manual_comment = MARK.upper()
        gradebook.db.commit()


def _check_built_gradebook(db_url: str, root: str) -> None:
    build_gradebook(db_url)
    assert_same_gradebook(db_url, "course101", root, ["hw1", "hw2", "empty", "absent"])
    max_score, rows = reader_rows(db_url, "course101", root, "hw1")
    # What the rows hold, not only that they agree: the sums, the penalty and the policy rule.
    assert max_score == 8.5
    assert rows["auto"] == (3.25, 8.5, 0.0, True, False)
    assert rows["manual"] == (3.5, 8.5, 0.0, True, False)
    assert rows["extra"] == (5.5, 8.5, 0.0, True, False)
    assert rows["late"][2] == 0.75
    assert rows["zeroed"][4] is True and rows["zeroed"][0] == 0.0 and rows["reviewed"][4] is False
    assert rows["blank"] == (0.0, 8.5, 0.0, True, False)
    with open_gradebook(db_url, course_id="course101", root=root) as gradebook:
        assert gradebook.duedates()["hw1"] == datetime.datetime(2026, 11, 20, 12, 0, 0, 250000)
        assert gradebook.max_score("absent") is None


def test_sqlite_gradebook_reads_as_nbgrader_computes_it(tmp_path):
    _check_built_gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}", str(tmp_path))


def test_relative_sqlite_url_is_relative_to_the_course_directory(tmp_path):
    build_gradebook(f"sqlite:///{tmp_path / 'grades.db'}")
    with open_gradebook("sqlite:///grades.db", course_id="course101", root=str(tmp_path)) as gradebook:
        assert set(gradebook.duedates()) == {"hw1", "hw2", "empty"}


def test_a_missing_sqlite_gradebook_is_created_by_nbgrader_as_before(tmp_path):
    with open_gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}", course_id="c", root=str(tmp_path)) as gradebook:
        assert gradebook.duedates() == {} and gradebook.submissions("hw1") == {}
    assert (tmp_path / "gradebook.db").is_file()


@pytest.mark.skipif(server_binaries() is None, reason="PostgreSQL server not installed")
def test_postgresql_gradebook_reads_as_nbgrader_computes_it(tmp_path):
    with running_postgres() as url:
        _check_built_gradebook(url, str(tmp_path))


# --- the autograded courses of test_export.py and test_policy.py --------------------------------


@pytest.mark.slow
def test_graded_course_reads_as_nbgrader_reads_it(tmp_path_factory):
    from tests.grading.test_export import graded_course

    course = graded_course(tmp_path_factory)  # late penalties, a student without a submission
    settings = read_course_config(course.course_dir)
    assert settings.exchange_root is not None  # read without nbgrader
    assert_same_gradebook(settings.db_url, settings.course_id, settings.root, [ASSIGNMENT])
    assert any(row[2] > 0 for row in reader_rows(settings.db_url, settings.course_id, settings.root, ASSIGNMENT)[1].values())
    with open_api(course.course_dir) as api:
        assert source_assignments(settings) == api.get_source_assignments()
        assert released_assignments(settings) == api.get_released_assignments() == {ASSIGNMENT}
        for assignment_id in (ASSIGNMENT, "*", "none"):
            assert submitted_students(settings, assignment_id) == api.get_submitted_students(assignment_id)


@pytest.mark.slow
def test_policy_zeroed_course_reads_as_nbgrader_reads_it(tmp_path_factory):
    from grader.grading.integrity.policy import apply_flagged_policy
    from tests.grading.integrity.test_policy import FLAGS, nbgrader_graded_course

    course = nbgrader_graded_course(tmp_path_factory.mktemp("zeroed"))
    apply_flagged_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "tampered-tests", FLAGS, "zero")
    _max, rows = reader_rows(course.gradebook_url, course.course_id, str(course.course_dir), ASSIGNMENT)
    assert rows["tampered-tests"][4] is True and rows["tampered-tests"][3] is True
    assert_same_gradebook(course.gradebook_url, course.course_id, str(course.course_dir), [ASSIGNMENT])


# --- the course config, read as data or by nbgrader --------------------------------------------


def _nbgrader_settings(course_dir: Path) -> tuple:
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=load_course_config(course_dir))
    return (coursedir.course_id, coursedir.root, coursedir.db_url, coursedir.directory_structure,
            coursedir.source_directory, coursedir.submitted_directory)


def _settings(settings: CourseConfig) -> tuple:
    return (settings.course_id, settings.root, settings.db_url, settings.directory_structure,
            settings.source_directory, settings.submitted_directory)


def _course(tmp_path: Path, **fields) -> Course:
    course = Course("course101", tmp_path / "course", tmp_path / "exchange", source_dir=REPOSITORY / "assignments" / "source", **fields)
    prepare_course_dir(course)
    return course


def test_the_written_config_is_read_as_data_as_nbgrader_reads_it(tmp_path):
    course = _course(tmp_path)
    settings = read_course_config(course.course_dir)
    assert settings.exchange_root == str(course.exchange_dir)
    assert _settings(settings) == _nbgrader_settings(course.course_dir)


@pytest.mark.parametrize("lines", [
    "c.CourseDirectory.course_id = ' padded '\nc.CourseDirectory.db_url = ''\n",  # stripped; the default URL
    "c.CourseDirectory.directory_structure = '{nbgrader_step}/{assignment_id}/{student_id}'\n"
    "c.CourseDirectory.submitted_directory = 'handed_in'\nc.CourseDirectory.root = '/elsewhere'\n",
    '"""A docstring."""\nc.CourseDirectory.db_url = "sqlite:///grades.db"\nc.Grader.flagged_policy = "zero"\n',
])
def test_literal_configs_are_read_as_nbgrader_reads_them(tmp_path, lines):
    course = _course(tmp_path)
    config = course.course_dir / "nbgrader_config.py"
    config.write_text(config.read_text() + lines)
    settings = read_course_config(course.course_dir)
    assert settings.exchange_root is not None  # the fast reader read it
    assert _settings(settings) == _nbgrader_settings(course.course_dir)


@pytest.mark.parametrize("lines", [
    "import os\nc.CourseDirectory.course_id = os.environ.get('COURSE', 'course101')\n",
    "if True:\n    c.CourseDirectory.submitted_directory = 'handed_in'\n",
    "c.CourseDirectory.submitted_directory = 'handed' + '_in'\n",
    "c.CourseDirectory.groupshared = True\n",
    "c.ExchangeFactory.list = 'grader.exchange.plugins.List'\n",
    "c.Authenticator.plugin_class = 'nbgrader.auth.JupyterHubAuthPlugin'\n",
    "c.ExchangeList.inbound = True\n",
    "c.CourseDirectory.course_id = 101\n",
])
def test_configs_it_cannot_be_sure_of_are_read_by_nbgrader(tmp_path, lines):
    course = _course(tmp_path)
    config = course.course_dir / "nbgrader_config.py"
    config.write_text(config.read_text() + lines)
    try:
        expected = _nbgrader_settings(course.course_dir)
    except Exception as error:  # nbgrader refuses it: so must status
        with pytest.raises(type(error)):
            read_course_config(course.course_dir)
        return
    settings = read_course_config(course.course_dir)
    assert settings.exchange_root is None  # nbgrader's loader read it, and nbgrader's API lists releases
    assert _settings(settings) == expected


def test_http_exchange_courses_list_releases_through_nbgrader(tmp_path):
    course = _course(tmp_path, exchange_url="http://127.0.0.1:9/services/exchange/")
    assert read_course_config(course.course_dir).exchange_root is None


def test_folder_listings_follow_a_custom_directory_structure(tmp_path):
    course = _course(tmp_path)
    config = course.course_dir / "nbgrader_config.py"
    config.write_text(config.read_text() + "c.CourseDirectory.directory_structure = '{nbgrader_step}/{assignment_id}/{student_id}'\n")
    for student in ("ann", "bob"):
        (course.course_dir / "submitted" / "hw1" / student).mkdir(parents=True)
    (course.course_dir / "submitted" / "hw1" / "not-a-folder").write_text("")
    (course.exchange_dir / "course101" / "outbound" / "hw1").mkdir(parents=True)
    settings = read_course_config(course.course_dir)
    with open_api(course.course_dir) as api:
        assert submitted_students(settings, "hw1") == api.get_submitted_students("hw1") == {"ann", "bob"}
        assert source_assignments(settings) == api.get_source_assignments()
        assert released_assignments(settings) == api.get_released_assignments() == {"hw1"}


# --- grader status as a command: no nbgrader ----------------------------------------------------

_LOADED = """
import contextlib, io, json, sys
from grader.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    codes = [main(["--course-dir", sys.argv[1], "status"]), main(["--course-dir", sys.argv[1], "status", "--json"]),
             main(["--course-dir", sys.argv[1], "status", "hw1"]), main(["--course-dir", sys.argv[1], "status", "hw1", "--json"])]
print(json.dumps({"codes": codes, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def test_status_command_imports_no_nbgrader_traitlets_or_jsonschema(tmp_path):
    course = _course(tmp_path)
    build_gradebook(course.gradebook_url)  # hw1 in the gradebook, as autograde leaves it
    for student in ("auto", "late"):
        (course.course_dir / "submitted" / student / "hw1").mkdir(parents=True)
    answer = json.loads(subprocess.run([sys.executable, "-c", _LOADED, str(course.course_dir)], cwd=REPOSITORY,
                                       capture_output=True, text=True, check=True).stdout)
    assert answer["codes"] == [0, 0, 0, 0]
    assert "hw1: 0 graded, 2 pending, 0 flagged" in answer["out"]
    loaded = {name.split(".")[0] for name in answer["modules"]}
    assert not loaded & {"nbgrader", "traitlets", "jsonschema", "sqlalchemy"}
