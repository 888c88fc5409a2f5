"""The whole nbgrader round trip over the HTTP exchange, on a real hub, from the students' own servers.

One course (instructor ian, students sam and sue) and a second one (student stu). The instructor
releases with ``grader release``; sam fetches and submits through his JupyterLab's assignment list
(nbgrader's server extension, which runs the configured exchange plugins with his server's hub
token), sue through ``nbgrader submit`` in a kernel of her server. Sam has edited his nbgrader
config to claim he is sue (nbgrader #1097): his work must still be filed, collected and graded as
his, and sue's left alone. Then ``grader collect``, ``grader autograde``, ``grader feedback``, and
each student fetches feedback, only their own. Assertions are on files and gradebook rows.
"""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest
import requests
import websocket
import yaml

from grader.exchange.plugins.base import feedback_folder_name
from grader.grading.gradebook import grade_rows
from tests.support.hubfixture import api_token, execute_cell, free_port, login, start_hub, start_server, stop_hub

pytestmark = [pytest.mark.slow, pytest.mark.hub]

COURSE, ASSIGNMENT = "ai101", "tiny"
STUDENTS = ("sam", "sue")


def _tiny_source_notebook() -> nbformat.NotebookNode:
    """An nbgrader source assignment small enough to grade in a second: one answer, one test."""
    def meta(**fields):
        return {"nbgrader": {"schema_version": 3, "locked": False, "solution": False, "grade": False, **fields}}
    answer = nbformat.v4.new_code_cell(
        "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
        metadata=meta(solution=True, grade_id="add"))
    test = nbformat.v4.new_code_cell("assert add(1, 2) == 3", metadata=meta(grade=True, locked=True, points=2,
                                                                            grade_id="test_add"))
    return nbformat.v4.new_notebook(cells=[answer, test], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("hub-data")
    # The course directory's own source/ (instead of the repository's link), holding the tiny assignment.
    source = data_dir / "courses" / COURSE / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    nbformat.write(_tiny_source_notebook(), source / f"{ASSIGNMENT}.ipynb")
    config_file = tmp_path_factory.mktemp("config") / "platform.yaml"
    config_file.write_text(yaml.safe_dump({
        "exchange": {"backend": "http", "service_port": free_port()},
        "idle_culler": {"enabled": False},
        "courses": {
            COURSE: {"formgrader_port": 8010, "instructors": ["ian"], "students": list(STUDENTS)},
            "ml201": {"formgrader_port": free_port(), "instructors": ["ivy"], "students": ["stu"]},
        },
    }))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config_file))
        running = start_hub(data_dir)
    try:
        yield running
    finally:
        stop_hub(running)


@pytest.fixture(scope="module")
def tokens(hub):
    return {name: api_token(hub, login(hub, name), name) for name in ("ian", *STUDENTS, "stu")}


def course_dir(hub):
    return hub.data_dir / "courses" / COURSE


def home(hub, name):
    return hub.data_dir / "homes" / name


def grader_cli(hub, token, *args):
    """The instructor's ``grader`` command, with their hub token for the exchange."""
    env = dict(os.environ, GRADER_COURSE_DIR=str(course_dir(hub)), GRADER_EXCHANGE_TOKEN=token)
    result = subprocess.run([sys.executable, "-m", "grader.cli", *args], env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"grader {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def assignment_list(hub, tokens, name, action=None, **form):
    """nbgrader's Lab assignment-list endpoints in the student's own server, as the Lab calls them."""
    base = f"{hub.url}/user/{name}"
    headers = {"Authorization": f"token {tokens[name]}"}
    if action:
        response = requests.post(f"{base}/assignments/{action}", data=form, headers=headers, timeout=180)
    else:
        response = requests.get(f"{base}/assignments", params=form, headers=headers, timeout=180)
    assert response.status_code == 200, response.text
    return response.json()


def run_in_kernel(hub, token, name, code, timeout=180):
    """Run ``code`` in a new kernel of the user's server; return its text/plain result."""
    base = f"{hub.url}/user/{name}"
    headers = {"Authorization": f"token {token}"}
    kernel = requests.post(f"{base}/api/kernels", json={"name": "python3"}, headers=headers)
    assert kernel.status_code == 201, kernel.text
    ws = websocket.create_connection(f"{base.replace('http', 'ws', 1)}/api/kernels/{kernel.json()['id']}/channels",
                                     header=[f"Authorization: token {token}"], timeout=timeout)
    try:
        return execute_cell(ws, code, timeout)
    finally:
        ws.close()
        requests.delete(f"{base}/api/kernels/{kernel.json()['id']}", headers=headers)


def service_submissions(hub, student):
    folder = hub.data_dir / "exchange-service" / COURSE / "submissions" / student / ASSIGNMENT
    return sorted(folder.iterdir()) if folder.is_dir() else []


def answered(path) -> None:
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[0].source = "def add(a, b):\n    return a + b"
    nbformat.write(notebook, path)


def test_release_fetch_submit_collect_autograde_feedback_over_http(hub, tokens):
    # --- the instructor releases through the plugin; the formgrader (a hub service) sees it ----
    grader_cli(hub, tokens["ian"], "release", ASSIGNMENT)
    released = hub.data_dir / "exchange-service" / COURSE / "released" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert released.is_file() and "BEGIN SOLUTION" not in released.read_text()
    assert not (hub.data_dir / "exchange" / COURSE).exists(), "the file exchange was used"
    ian = login(hub, "ian")
    formgrader = f"{hub.url}/services/{COURSE}/formgrader"
    assert ian.get(formgrader).status_code == 200  # the page sets the formgrader's own _xsrf cookie
    listed = ian.get(f"{formgrader}/api/assignments")
    assert listed.status_code == 200, listed.text
    assert [(a["name"], a["status"]) for a in listed.json()] == [(ASSIGNMENT, "released")]
    # The formgrader's buttons: unrelease and release again, with the formgrader service's own token.
    xsrf = {"X-XSRFToken": ian.cookies.get("_xsrf", path=f"/services/{COURSE}/")}
    for action, present in [("unrelease", False), ("release", True)]:
        answer = ian.post(f"{formgrader}/api/assignment/{ASSIGNMENT}/{action}", headers=xsrf)
        assert answer.status_code == 200 and answer.json()["success"], answer.text
        assert released.is_file() == present

    for name in STUDENTS:
        start_server(hub, name, tokens[name])

    # --- sam: fetch and submit through the Lab's assignment list, twice; claims to be sue ------
    fetched = assignment_list(hub, tokens, "sam", "fetch", course_id=COURSE, assignment_id=ASSIGNMENT)
    assert [(a["assignment_id"], a["status"]) for a in fetched["value"]] == [(ASSIGNMENT, "fetched")]
    sam_copy = home(hub, "sam") / COURSE / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert "raise NotImplementedError" in sam_copy.read_text()
    first = assignment_list(hub, tokens, "sam", "submit", course_id=COURSE, assignment_id=ASSIGNMENT)
    assert first["success"], first
    config = home(hub, "sam") / ".jupyter" / "nbgrader_config.py"
    config.write_text(config.read_text() + "c.CourseDirectory.student_id = 'sue'\n")
    answered(sam_copy)
    second = assignment_list(hub, tokens, "sam", "submit", course_id=COURSE, assignment_id=ASSIGNMENT)
    assert second["success"], second
    submitted = [a for a in second["value"] if a.get("submissions")]
    assert [(a["student_id"], len(a["submissions"])) for a in submitted] == [("sam", 2)]
    assert len(service_submissions(hub, "sam")) == 2 and service_submissions(hub, "sue") == []

    # --- sue: nbgrader's own CLI in a kernel of her server (her server's hub token) ------------
    out = run_in_kernel(hub, tokens["sue"], "sue", (
        "import os, subprocess, sys\n"
        "os.chdir(os.path.expanduser('~'))\n"
        "runs = [subprocess.run([sys.executable, '-m', 'nbgrader', verb, 'tiny'], capture_output=True, text=True)\n"
        "        for verb in ('fetch_assignment', 'submit')]\n"
        "[(r.returncode, r.stderr[-300:] if r.returncode else '') for r in runs]"))
    assert out == "[(0, ''), (0, '')]", out
    assert len(service_submissions(hub, "sue")) == 1 and len(service_submissions(hub, "sam")) == 2

    # --- a student reads or overwrites nothing of another's, nor submits to another course -----
    sue_id = service_submissions(hub, "sue")[0].name
    api = f"{hub.url}/services/nbgrader-exchange/api/courses/{COURSE}"
    as_sam = {"Authorization": f"token {tokens['sam']}"}
    assert requests.get(f"{api}/submissions/sue/{ASSIGNMENT}/{sue_id}", headers=as_sam).status_code == 403
    assert requests.put(f"{api}/submissions/sue/{ASSIGNMENT}/{sue_id}", headers=as_sam,
                        json={"files": {}}).status_code == 403
    assert requests.post(f"{api}/assignments/{ASSIGNMENT}/submissions", headers={"Authorization": f"token {tokens['stu']}"},
                         json={"files": {}}).status_code == 403

    # --- the instructor collects (latest per student), autogrades, releases feedback ------------
    grader_cli(hub, tokens["ian"], "collect", ASSIGNMENT)
    collected = {name: course_dir(hub) / "submitted" / name / ASSIGNMENT for name in STUDENTS}
    assert sorted(p.name for p in (course_dir(hub) / "submitted").iterdir()) == sorted(STUDENTS)
    assert "return a + b" in (collected["sam"] / f"{ASSIGNMENT}.ipynb").read_text()
    assert "raise NotImplementedError" in (collected["sue"] / f"{ASSIGNMENT}.ipynb").read_text()
    latest_sam = service_submissions(hub, "sam")[-1]
    assert (collected["sam"] / "timestamp.txt").read_text() == (latest_sam / "timestamp.txt").read_text()

    grader_cli(hub, tokens["ian"], "autograde", ASSIGNMENT, "--workers", "1")
    gradebook = f"sqlite:///{course_dir(hub) / 'gradebook.db'}"
    scores = {name: [(row.cell, row.auto_score) for row in grade_rows(gradebook, course_id=COURSE,
                     assignment_id=ASSIGNMENT, student_id=name) if row.autograded] for name in STUDENTS}
    assert scores == {"sam": [("test_add", 2.0)], "sue": [("test_add", 0.0)]}

    grader_cli(hub, tokens["ian"], "feedback", ASSIGNMENT)

    # --- each student fetches feedback: their own, for the submission that was graded -----------
    for name in STUDENTS:
        listing = assignment_list(hub, tokens, name, "fetch_feedback", course_id=COURSE, assignment_id=ASSIGNMENT)
        assert listing["success"], listing
        feedback = sorted((home(hub, name) / COURSE / ASSIGNMENT / "feedback").rglob("*.html"))
        graded_at = (collected[name] / "timestamp.txt").read_text()
        assert [(p.parent.name, p.name) for p in feedback] == [(feedback_folder_name(graded_at), f"{ASSIGNMENT}.html")]
        html = feedback[0].read_text()
        assert "BEGIN SOLUTION" not in html
        # The heading of nbgrader's feedback: the notebook and this student's own score.
        assert f"{ASSIGNMENT} (Score: {scores[name][0][1]} / 2.0)" in html
    assert requests.get(f"{api}/feedback/sue/{ASSIGNMENT}", headers=as_sam).status_code == 403

    # The Lab's list shows sam's graded submission with its feedback fetched.
    listing = assignment_list(hub, tokens, "sam", course_id=COURSE)["value"]
    sam_submissions = [s for a in listing if a.get("submissions") for s in a["submissions"]]
    assert [(s["student_id"], s["has_exchange_feedback"], s["has_local_feedback"]) for s in sam_submissions] == [
        ("sam", False, False), ("sam", True, True)]
