"""Course content through nbgitpuller links: a real hub, a student's real server, a real git repository.

The instructor's repository is a bare git repository in tmp_path (a file:// URL, as good as a
hosted one for git). The student follows the link the README describes, nbgitpuller clones it
into their home, the student edits a notebook, the instructor pushes changes, the student follows
the link again: their edit stays and the instructor's other changes arrive.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import nbformat
import pytest
import requests

from tests.support.hubfixture import api_token, login, start_hub, start_server, stop_hub, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.hub]

TARGET = "lessons"  # a folder of its own, apart from the copied-at-spawn ~/courses


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=Instructor", "-c", "user.email=instructor@example.org", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


def lesson(first: str, last: str) -> nbformat.NotebookNode:
    """A lesson whose first and last cells are far apart in the file, as in a real notebook."""
    middle = "\n".join(f"step_{i} = {i}" for i in range(8))
    cells = [nbformat.v4.new_code_cell(first, id="exercise"), nbformat.v4.new_markdown_cell("## Worked example", id="title"),
             nbformat.v4.new_code_cell(middle, id="example"), nbformat.v4.new_code_cell(last, id="summary")]
    return nbformat.v4.new_notebook(cells=cells)


def sources(path: Path) -> dict[str, str]:
    return {cell["id"]: cell["source"] for cell in nbformat.read(path, as_version=4).cells}


@pytest.fixture
def course_repo(tmp_path):
    """The instructor's repository (bare, what the link points at) and their working copy."""
    bare, work = tmp_path / "lessons.git", tmp_path / "instructor"
    git("init", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    git("clone", str(bare), str(work), cwd=tmp_path)
    git("checkout", "-b", "main", cwd=work)
    nbformat.write(lesson("answer = None  # your code here", "print('first version')"), work / "01_lesson.ipynb")
    git("add", ".", cwd=work)
    git("commit", "-m", "first lesson", cwd=work)
    git("push", "origin", "main", cwd=work)
    return bare, work


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    running = start_hub(tmp_path_factory.mktemp("hub-data"))
    yield running
    stop_hub(running)


def follow_link(hub, session: requests.Session, repo_url: str) -> list[dict]:
    """Open the nbgitpuller link, then read the progress stream its page reads; return the events."""
    query = {"repo": repo_url, "branch": "main", "targetpath": TARGET, "urlpath": f"lab/tree/{TARGET}/01_lesson.ipynb"}
    page = session.get(f"{hub.url}/user/student/git-pull?{urlencode(query)}")  # logs in to the server (OAuth)
    assert page.status_code == 200 and "nbgitpuller" in page.text.lower(), page.url
    del query["urlpath"]
    events = []
    with session.get(f"{hub.url}/user/student/git-pull/api?{urlencode(query)}", stream=True, timeout=120) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if events[-1]["phase"] in ("finished", "error"):
                    break
    assert events and events[-1]["phase"] == "finished", events[-3:]
    return events


def test_nbgitpuller_is_installed_and_enabled_in_single_user_servers(hub):
    session = login(hub, "student")
    token = api_token(hub, session, "student")
    start_server(hub, "student", token)
    try:
        # The extension answers under the student's server (404 if it were not loaded).
        response = requests.get(f"{hub.url}/user/student/git-pull/api", headers={"Authorization": f"token {token}"})
        # Loaded: it answers with its event stream, reporting the missing ?repo= argument.
        assert response.status_code == 200
        assert '"phase": "error"' in response.text and "Missing argument repo" in response.text, response.text[:500]
    finally:
        stop_server(hub, "student", token)


def test_a_pull_merges_updates_without_clobbering_the_students_edits(hub, course_repo):
    bare, instructor = course_repo
    repo_url = bare.as_uri()  # file:///...
    session = login(hub, "student")
    token = api_token(hub, session, "student")
    headers = {"Authorization": f"token {token}"}
    start_server(hub, "student", token)
    home = hub.data_dir / "homes" / "student"
    notebook_path = home / TARGET / "01_lesson.ipynb"
    try:
        follow_link(hub, session, repo_url)
        assert sources(notebook_path)["exercise"] == "answer = None  # your code here"
        # The copy-at-spawn lessons are still there, in their own folder.
        assert (home / "courses" / "01_backprop" / "01_forward_pass.ipynb").is_file()

        # The student answers the exercise and saves, as JupyterLab does (the contents API).
        api = f"{hub.url}/user/student/api/contents/{TARGET}/01_lesson.ipynb"
        model = requests.get(api, headers=headers).json()
        model["content"]["cells"][0]["source"] = "answer = 42  # the student's work"
        saved = requests.put(api, headers=headers, json={"type": "notebook", "format": "json", "content": model["content"]})
        assert saved.status_code == 200, saved.text

        # The instructor changes the same exercise line, fixes the summary and adds a file.
        updated = lesson("answer = ...  # rewritten by the instructor", "print('fixed version')")
        nbformat.write(updated, instructor / "01_lesson.ipynb")
        (instructor / "02_notes.md").write_text("# Notes for week 2\n")
        git("add", ".", cwd=instructor)
        git("commit", "-m", "fix the summary, add notes", cwd=instructor)
        git("push", "origin", "main", cwd=instructor)

        follow_link(hub, session, repo_url)
        after = sources(notebook_path)
        # nbgitpuller commits the student's change and merges with git's -Xours: where both sides
        # changed the same lines the student's version wins; every other upstream change arrives.
        assert after["exercise"] == "answer = 42  # the student's work"
        assert after["summary"] == "print('fixed version')"
        assert (home / TARGET / "02_notes.md").read_text() == "# Notes for week 2\n"
        log = git("log", "--format=%an %s", cwd=home / TARGET)
        assert "nbgitpuller Automatic commit by nbgitpuller" in log and "Instructor fix the summary, add notes" in log

        # Deleting a notebook and following the link again gives a fresh copy: how a student resets one.
        notebook_path.unlink()
        follow_link(hub, session, repo_url)
        assert sources(notebook_path)["exercise"] == "answer = ...  # rewritten by the instructor"
    finally:
        stop_server(hub, "student", token)
