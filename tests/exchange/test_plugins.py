"""The HTTP exchange plugins' own decisions, without a hub: the service's answers are stubbed
where the plugin calls it (``HttpExchange.call``); the gradebook and the files are real.

On a real hub and in a browser: tests/exchange/test_service.py, tests/integration/test_browser.py.
"""

from __future__ import annotations

import base64
import hashlib

import jinja2
import pytest
from nbgrader.api import Gradebook
from nbgrader.auth import Authenticator
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config

from grader.exchange.plugins import Collect, FetchFeedback, List, ReleaseFeedback
from grader.exchange.plugins.base import feedback_folder_name
from grader.exchange.plugins.mathjax import NBCONVERT_MATHJAX_URL, localise, macro_template

COURSE = "ai101"
TIMESTAMP = "2024-05-01 12:34:56.123456 UTC"


def _plugin(cls, tmp_path, answers, **coursedir):
    """A plugin whose service calls answer from ``answers`` ({path tuple: answer}), recorded."""
    config = Config()
    config.HttpExchange.service_url = "http://127.0.0.1:1/services/nbgrader-exchange/"
    config.HttpExchange.api_token = "unused"
    config.CourseDirectory.root = str(tmp_path / "course")
    config.CourseDirectory.db_url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    for key, value in coursedir.items():
        setattr(config.CourseDirectory, key, value)
    plugin = cls(coursedir=CourseDirectory(config=config), authenticator=Authenticator(config=config), config=config)
    plugin.assignment_dir = str(tmp_path / "home")
    plugin.calls = []

    def call(method, *parts, params=None, json=None):
        plugin.calls.append((method, parts, params, json))
        return answers[parts]

    plugin.call = call
    return plugin


# --- the folder feedback is fetched into ------------------------------------------------------

def test_feedback_goes_to_a_folder_named_without_spaces_or_colons():
    assert feedback_folder_name(TIMESTAMP) == "2024-05-01_12-34-56_123456"
    assert feedback_folder_name("2024-05-01 12:34:56 UTC") == "2024-05-01_12-34-56_000000"


def test_two_submissions_in_one_second_keep_their_own_feedback_folders():
    assert feedback_folder_name("2024-05-01 12:34:56.100000 UTC") != feedback_folder_name("2024-05-01 12:34:56.900000 UTC")


def _submission(**feedback):
    return {"course_id": COURSE, "student_id": "sam", "assignment_id": "hw1", "timestamp": TIMESTAMP,
            "submission_id": "s1", "notebooks": ["hw1"], "feedback": feedback}


def test_fetched_feedback_is_listed_with_view_feedback_on_the_file(tmp_path):
    html = b"<p>sam: 3/3</p>"
    answers = {("courses",): {"name": "sam", "courses": [{"course_id": COURSE, "staff": False}]},
               ("courses", COURSE, "feedback", "sam", "hw1"): [
                   {"timestamp": TIMESTAMP, "files": {"hw1.html": base64.b64encode(html).decode()}}],
               ("courses", COURSE, "submissions"): [_submission(hw1=hashlib.md5(html).hexdigest())]}
    fetch = _plugin(FetchFeedback, tmp_path, answers, course_id=COURSE, assignment_id="hw1")
    fetch.start()
    fetched = tmp_path / "home" / "hw1" / "feedback" / "2024-05-01_12-34-56_123456" / "hw1.html"
    assert fetched.read_bytes() == html

    listing = _plugin(List, tmp_path, answers, course_id=COURSE)
    listing.cached = True
    [assignment] = listing.start()
    [submission] = assignment["submissions"]
    assert (submission["has_local_feedback"], submission["feedback_updated"]) == (True, False)
    # Lab's "view feedback" goes to local_feedback_path: the feedback itself, one notebook here.
    assert submission["local_feedback_path"] == str(fetched)


def test_before_feedback_nothing_is_there_to_view_or_fetch(tmp_path):
    answers = {("courses", COURSE, "submissions"): [_submission()],
               ("courses",): {"name": "sam", "courses": [{"course_id": COURSE, "staff": False}]}}
    listing = _plugin(List, tmp_path, answers, course_id=COURSE)
    listing.cached = True
    [submission] = listing.start()[0]["submissions"]
    assert (submission["has_exchange_feedback"], submission["has_local_feedback"], submission["local_feedback_path"]) == (
        False, False, None)


# --- the courses of a student before anything is released ----------------------------------------

def _courses_answers(released):
    return {("courses",): {"name": "sam", "courses": [{"course_id": COURSE, "staff": False},
                                                      {"course_id": "ml201", "staff": False}]},
            ("courses", COURSE, "assignments"): released,
            ("courses", "ml201", "assignments"): []}


def test_every_course_of_the_student_is_named_even_with_nothing_released(tmp_path):
    """nbgrader's assignment_list takes the courses from the listing's course ids (list_courses)."""
    released = [{"course_id": COURSE, "assignment_id": "hw1", "notebooks": ["hw1"]}]
    listing = _plugin(List, tmp_path, _courses_answers(released))
    assignments = listing.start()
    assert sorted({a["course_id"] for a in assignments}) == [COURSE, "ml201"]
    # The course without releases is named by an entry that is no assignment: Lab shows no row
    # for a status other than released, fetched and submitted.
    assert [(a["course_id"], a["status"]) for a in assignments] == [(COURSE, "released"), ("ml201", "enrolled")]


def test_a_students_only_course_is_named_too_and_staff_get_no_such_entry(tmp_path):
    # One course: the hub writes it into the student's nbgrader config, so Lab asks with it.
    listing = _plugin(List, tmp_path, _courses_answers([]), course_id="ml201")
    assert [(a["course_id"], a["status"]) for a in listing.start()] == [("ml201", "enrolled")]
    as_staff = _courses_answers([])
    as_staff[("courses",)] = {"name": "ian", "courses": [{"course_id": "ml201", "staff": True}]}
    assert _plugin(List, tmp_path, as_staff, course_id="ml201").start() == []


# --- names in the formgrader -----------------------------------------------------------------

def test_collect_names_students_by_their_hub_account_and_keeps_an_instructors_names(tmp_path):
    files = {"hw1.ipynb": base64.b64encode(b"{}").decode(), "timestamp.txt": base64.b64encode(TIMESTAMP.encode()).decode()}
    answers = {("courses", COURSE, "submissions"): [
                   {**_submission(), "student_id": name, "submission_id": name} for name in ("sam", "sue")],
               **{("courses", COURSE, "submissions", name, "hw1", name): {"files": files} for name in ("sam", "sue")}}
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}", COURSE) as gradebook:
        gradebook.add_student("sue", first_name="Sue", last_name="Smith")
    _plugin(Collect, tmp_path, answers, course_id=COURSE, assignment_id="hw1").start()
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}", COURSE) as gradebook:
        names = {s.id: (s.last_name, s.first_name) for s in gradebook.students}
    assert names == {"sam": ("sam", ""), "sue": ("Smith", "Sue")}
    assert (tmp_path / "course" / "submitted" / "sam" / "hw1" / "hw1.ipynb").is_file()


# --- MathJax without a CDN ---------------------------------------------------------------------

def _nbconvert_macro() -> str:
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("nbconvert", "templates", "base"):
        try:
            with open(f"{folder}/mathjax.html.j2") as macro:
                return macro.read()
        except FileNotFoundError:
            continue
    pytest.fail("nbconvert's base/mathjax.html.j2 not found")


def test_the_grading_views_macro_loads_mathjax_from_the_pages_server_and_keeps_its_configuration():
    original = _nbconvert_macro()
    template = macro_template(original)
    assert template is not None and NBCONVERT_MATHJAX_URL in original
    rendered = jinja2.Environment().from_string(template).module.mathjax()
    assert f'<script src="{NBCONVERT_MATHJAX_URL}">' not in rendered
    assert '"aicourse/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"' in rendered
    assert "MathJax.Hub.Config" in rendered  # nbconvert's configuration stays
    assert macro_template("<script>nothing known</script>") is None


def test_released_feedback_loads_mathjax_from_the_students_server(tmp_path):
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("$x^2$")])
    html = HTMLExporter(template_name="classic").from_notebook_node(notebook)[0]
    assert f'<script src="{NBCONVERT_MATHJAX_URL}"> </script>' in html
    assert localise(localise(html)) == localise(html) and "aicourse/mathjax/" in localise(html)

    feedback = tmp_path / "course" / "feedback" / "sam" / "hw1"
    feedback.mkdir(parents=True)
    (feedback / "hw1.html").write_text(html)
    (feedback / "timestamp.txt").write_text(TIMESTAMP)
    answers = {("courses", COURSE, "feedback", "sam", "hw1"): {}}
    release = _plugin(ReleaseFeedback, tmp_path, answers, course_id=COURSE, assignment_id="hw1")
    release.start()
    [(method, parts, _, body)] = release.calls
    sent = base64.b64decode(body["files"]["hw1.html"]).decode()
    assert (method, body["timestamp"]) == ("PUT", TIMESTAMP)
    assert sent == localise(html) and NBCONVERT_MATHJAX_URL in sent  # the CDN stays the fallback
