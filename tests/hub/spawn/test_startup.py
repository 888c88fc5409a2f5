"""What a user's server loads at start (issue 15, start-up cost): students' servers skip what only
instructors use and what nobody uses; JupyterHub's server is started without two eager imports.

Times are measured by benchmarks/server_startup.py, never asserted here: these tests check which
extensions and settings a server really gets, and that the deferred work still works when used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.hub.spawn.servers import STAFF_JUPYTER_CONFIG, STUDENT_JUPYTER_CONFIG, singleuser_command

REPO = Path(__file__).resolve().parents[3]

PLATFORM_EXTENSIONS = {"grader.hub.spawn.servers", "grader.seats.lesson_reports"}
INSTRUCTOR_ONLY = {"nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list"}
# What a student uses: the Lab and the Notebook UI, terminals, nbgitpuller links, and nbgrader's
# Assignments list (fetch, submit) and Validate; the hub's own extension is added at start.
STUDENT_NEEDS = {"jupyterlab", "notebook", "notebook_shim", "jupyter_server_terminals", "nbgitpuller",
                 "nbgrader.server_extensions.assignment_list", "nbgrader.server_extensions.validate_assignment"}
UNUSED = {"jupyter_lsp"}  # no language server is installed, and JupyterLab's LSP client is off by default


def _python(code: str, *, config_path: Path | None, home: Path) -> str:
    """Run ``code`` in a fresh interpreter with a server's JUPYTER_CONFIG_PATH; its stdout."""
    env = {key: value for key, value in os.environ.items() if key != "JUPYTER_CONFIG_PATH"}
    env["HOME"] = str(home)  # no ~/.jupyter of whoever runs the tests
    if config_path is not None:
        env["JUPYTER_CONFIG_PATH"] = str(config_path)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=home)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


SERVER_CONFIG = """
import json
from jupyter_server.serverapp import ServerApp
app = ServerApp()
app.load_config_file()
app.find_server_extensions()  # as the server does: every config folder's jupyter_server_config(.d)
print(json.dumps({"extensions": dict(app.jpserver_extensions), "lab": dict(app.config.get("LabApp", {}))}))
"""


def server_config(config_path: Path | None, home: Path) -> dict:
    return json.loads(_python(SERVER_CONFIG, config_path=config_path, home=home))


def enabled(extensions: dict) -> set[str]:
    return {name for name, on in extensions.items() if on}


def test_a_students_server_loads_what_students_use_and_nothing_for_instructors(tmp_path):
    config = server_config(STUDENT_JUPYTER_CONFIG, tmp_path)
    assert STUDENT_NEEDS <= enabled(config["extensions"])
    assert not (INSTRUCTOR_ONLY | UNUSED) & enabled(config["extensions"])


def test_a_students_lab_has_no_pypi_extension_manager_and_no_news(tmp_path):
    # The PyPI manager makes an HTTP client (TLS context, CA bundle) at start for installs that
    # students cannot make; the read-only one lists what is installed.
    lab = server_config(STUDENT_JUPYTER_CONFIG, tmp_path)["lab"]
    assert lab == {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                   "extension_manager": "readonly"}


def test_instructors_keep_the_formgrader_course_list_and_everything_else(tmp_path):
    staff = server_config(STAFF_JUPYTER_CONFIG, tmp_path)
    bare = server_config(None, tmp_path)
    assert INSTRUCTOR_ONLY | STUDENT_NEEDS <= enabled(staff["extensions"])
    # Plus the platform's own: Lab's Formgrader menu sent to the course's service, and the
    # lesson reports (which do nothing where seats are off).
    assert enabled(staff["extensions"]) - PLATFORM_EXTENSIONS == enabled(bare["extensions"])
    assert "extension_manager" not in staff["lab"]


# --- the hub's command: jupyterhub.singleuser with two eager imports deferred ------------------


def test_the_hub_starts_servers_through_the_deferring_entry_point():
    assert singleuser_command()[1:] == ["-m", "grader.hub.spawn.singleuser"]


DEFERRED_IRI_CHECK = """
import json, sys
from grader.hub.spawn.singleuser import defer_start_up_work
defer_start_up_work()
import jupyter_server.serverapp  # imports jupyter_events, jsonschema and its format checkers
at_start = "rfc3987_syntax.syntax_helpers" in sys.modules
from jsonschema import Draft7Validator
checker = Draft7Validator.FORMAT_CHECKER
iri_checked = "iri" in checker.checkers
valid = checker.conforms("https://example.org/ümlaut?q=1", "iri")
invalid = checker.conforms("no scheme here", "iri")
print(json.dumps({"at_start": at_start, "iri_checked": iri_checked, "valid": valid, "invalid": invalid,
                  "after_use": "rfc3987_syntax.syntax_helpers" in sys.modules}))
"""


def test_the_iri_grammars_are_compiled_at_first_use_not_at_start(tmp_path):
    pytest.importorskip("rfc3987_syntax")
    result = json.loads(_python(DEFERRED_IRI_CHECK, config_path=None, home=tmp_path))
    assert result == {"at_start": False, "iri_checked": True, "valid": True, "invalid": False, "after_use": True}


def test_a_deferred_module_imports_on_first_call_or_attribute(tmp_path, monkeypatch):
    from grader.hub.spawn.singleuser import defer_module

    (tmp_path / "slowmod.py").write_text("IMPORTS = [1]\ndef double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert defer_module("slowmod", ("double",))
        from slowmod import double  # what jsonschema does: costs nothing yet

        assert not hasattr(sys.modules["slowmod"], "__file__")  # still the stand-in
        assert double(21) == 42
        assert sys.modules["slowmod"].__file__.endswith("slowmod.py")  # the real module now
        assert not defer_module("slowmod", ("double",))  # already imported: left alone
        del sys.modules["slowmod"]
        assert defer_module("slowmod", ("double",))
        assert sys.modules["slowmod"].IMPORTS == [1]  # another attribute: the real module's
        assert not defer_module("no_such_module_here", ())
    finally:
        sys.modules.pop("slowmod", None)


NODE_CALLS = """
import json, subprocess
started = []
real_init = subprocess.Popen.__init__
def recording_init(self, args, *rest, **kwargs):
    started.append(args if isinstance(args, str) else " ".join(map(str, args)))
    real_init(self, args, *rest, **kwargs)
subprocess.Popen.__init__ = recording_init
from grader.hub.spawn.singleuser import defer_start_up_work
defer_start_up_work()
import jupyterlab.labapp  # asked node for yarn's registry at import
from jupyterlab.commands import AppOptions, YARN_DEFAULT_REGISTRY
print(json.dumps({"started": started, "registry": AppOptions().registry == YARN_DEFAULT_REGISTRY}))
"""


def test_jupyterlab_starts_no_node_process_and_uses_the_default_registry(tmp_path):
    result = json.loads(_python(NODE_CALLS, config_path=None, home=tmp_path))
    assert result["started"] == [] and result["registry"]


# --- a real start, as the hub does it (without a hub) ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind, loaded, not_loaded", [
    ("student", STUDENT_NEEDS, INSTRUCTOR_ONLY | UNUSED),
    ("staff", STUDENT_NEEDS | INSTRUCTOR_ONLY, set()),
])
def test_a_server_started_as_the_hub_starts_it_loads_its_extensions(tmp_path, kind, loaded, not_loaded):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from server_startup import stand_in_hub, start_once
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    with stand_in_hub() as hub_url:
        cost, log = start_once(kind, work=tmp_path, hub_url=hub_url)
    assert cost.cpu_s > 0
    started = {line.split("] ", 1)[1].split(" | ")[0] for line in log.splitlines()
               if "| extension was successfully loaded" in line}
    assert loaded | {"jupyterhub"} <= started
    assert not not_loaded & started
    assert ("Extension Manager is 'readonly'" in log) == (kind == "student")
