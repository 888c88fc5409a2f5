"""grader.hub: the layered settings, and the traits they set on a bare traitlets Config (no hub)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from grader.hub.config import apply_settings
from grader.hub.layers import ConfigError, merge_layers, read_layer
from grader.hub.settings import (
    DEFAULT_CONFIG_PATH,
    CourseSettings,
    HubSettings,
    layered_config,
    load_settings,
    settings_from_config,
)
from grader.hub.spawn.servers import STUDENT_JUPYTER_CONFIG, jupyter_config_path_for


def _settings(tmp_path, **overrides) -> HubSettings:
    course = CourseSettings("demo1", formgrader_port=9010, instructors=("instructor",), students=("student",))
    return HubSettings(**{"data_dir": tmp_path / "data", "port": 9000, "courses": (course,), **overrides})


def _applied(tmp_path, **overrides) -> tuple[Config, HubSettings]:
    settings = _settings(tmp_path, **overrides)
    config = Config()
    apply_settings(config, settings)
    return config, settings


def _write_yaml(path: Path, data: dict, mode: int = 0o644) -> Path:
    path.write_text(yaml.safe_dump(data))
    os.chmod(path, mode)
    return path


def _env(tmp_path, config_file: Path, **extra: str) -> dict[str, str]:
    return {"AICOURSE_CONFIG": str(config_file), "AICOURSE_DATA_DIR": str(tmp_path / "data"), **extra}


def test_state_stays_in_the_data_folder_on_loopback(tmp_path):
    c, settings = _applied(tmp_path)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:9000"
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'data' / 'jupyterhub.sqlite'}"
    assert Path(c.JupyterHub.cookie_secret_file).parent == settings.data_dir
    assert Path(c.PlatformAuthenticator.accounts_db).parent == settings.data_dir


def test_the_course_service_is_open_to_instructors_only(tmp_path):
    c, settings = _applied(tmp_path)
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "demo1"]
    assert service["cwd"] == str(settings.course("demo1").course_dir)
    assert service["url"] == "http://127.0.0.1:9010"
    (role,) = [r for r in c.JupyterHub.load_roles if "access:services!service=demo1" in r["scopes"]]
    assert role["name"] == "grader-demo1" and role["groups"] == ["formgrade-demo1"]
    assert all(scope.endswith("!service=demo1") for scope in role["scopes"])
    assert c.JupyterHub.load_groups["formgrade-demo1"]["users"] == ["instructor"]
    assert c.JupyterHub.load_groups["nbgrader-demo1"]["users"] == ["student"]
    assert (settings.course("demo1").course_dir / "nbgrader_config.py").is_file()


def test_applying_twice_gives_the_same_config(tmp_path):
    first, settings = _applied(tmp_path)
    second = Config()
    apply_settings(second, settings)
    apply_settings(second, settings)
    for section in ("JupyterHub", "Spawner", "PlatformAuthenticator", "ConfigurableHTTPProxy"):
        assert {k: v for k, v in first[section].items() if not callable(v)} == {
            k: v for k, v in second[section].items() if not callable(v)
        }


def test_environment_overrides_and_a_bad_value_names_the_variable(tmp_path):
    settings = load_settings({"AICOURSE_PORT": "8123", "AICOURSE_STUDENTS": "ann, ben"})
    assert settings.port == 8123 and settings.courses[0].students == ("ann", "ben")
    with pytest.raises(ValueError, match="AICOURSE_PORT"):
        load_settings({"AICOURSE_PORT": "eighty"})


# --- the layers -------------------------------------------------------------------------------


def test_merge_is_pure_deep_and_later_layers_win():
    defaults = {"port": 8000, "accounts": {"max_failed_logins": 5, "lockout_seconds": 600}, "names": ["a"]}
    admin = {"accounts": {"lockout_seconds": 60}, "names": ["b", "c"]}
    merged = merge_layers(defaults, admin, {"port": 9000})
    assert merged == {"port": 9000, "accounts": {"max_failed_logins": 5, "lockout_seconds": 60}, "names": ["b", "c"]}
    assert defaults["accounts"]["lockout_seconds"] == 600 and admin == {"accounts": {"lockout_seconds": 60}, "names": ["b", "c"]}
    assert merge_layers({"a": {"b": 1}, "c": 2}, {"a": None}) == {"c": 2}


def test_order_is_defaults_then_secrets_then_yaml_then_environment():
    secrets = {"port": 1111, "proxy_auth_token": "s" * 40}
    admin = {"port": 2222, "courses": {"c1": {"formgrader_port": 9001}}}
    assert layered_config(secrets=secrets, admin={}, environ={})["port"] == 1111
    config = layered_config(secrets=secrets, admin=admin, environ={})
    assert config["port"] == 2222 and config["proxy_auth_token"] == "s" * 40 and config["hub_port"] == 8081
    assert layered_config(secrets=secrets, admin=admin, environ={"AICOURSE_PORT": "3333"})["port"] == 3333


def test_the_repository_yaml_is_valid_and_gives_the_quick_start_hub(tmp_path):
    settings = load_settings({"AICOURSE_DATA_DIR": str(tmp_path / "data")})
    assert settings.port == 8000 and settings.ip == "127.0.0.1"
    (course,) = settings.courses
    assert (course.course_id, course.instructors, course.students) == ("ai101", ("instructor",), ("student",))
    assert settings.users() == ["instructor", "student"]
    assert load_settings({"AICOURSE_DATA_DIR": str(tmp_path)}).courses == settings.courses
    assert read_layer(DEFAULT_CONFIG_PATH, required=True)["courses"]["ai101"]["formgrader_port"] == 8010


def test_yaml_file_layer_is_read_from_aicourse_config(tmp_path):
    config_file = _write_yaml(tmp_path / "platform.yaml", {
        "port": 8800,
        "accounts": {"lockout_seconds": 30},
        "courses": {"ml201": {"formgrader_port": 8811, "instructors": ["ivy"], "students": ["sam", "sue"]}},
    })
    settings = load_settings(_env(tmp_path, config_file))
    assert settings.port == 8800 and settings.lockout_seconds == 30 and settings.allowed_failed_logins == 5
    assert settings.courses == (CourseSettings("ml201", 8811, instructors=("ivy",), students=("sam", "sue")),)
    assert settings.data_dir == tmp_path / "data"


def test_a_course_flagged_policy_reaches_its_nbgrader_config_and_survives_a_restart(tmp_path):
    from grader.grading.course_dir import prepare_course_dir
    from grader.grading.integrity.policy import flagged_policy
    from grader.grading.nbgrader_api import load_course_config

    config_file = _write_yaml(tmp_path / "platform.yaml", {"courses": {
        "ml201": {"formgrader_port": 8811, "flagged_policy": "zero"}, "ml202": {"formgrader_port": 8812}}})
    settings = load_settings(_env(tmp_path, config_file))
    strict, default = settings.course("ml201"), settings.course("ml202")
    for _ in range(2):  # the hub prepares every course directory again at each start
        prepare_course_dir(strict)
        prepare_course_dir(default)
    assert flagged_policy(load_course_config(strict.course_dir)) == "zero"
    assert flagged_policy(load_course_config(default.course_dir)) == "keep"

    _write_yaml(config_file, {"courses": {"ml201": {"formgrader_port": 8811, "flagged_policy": "drop"}}})
    with pytest.raises(ConfigError, match="flagged_policy") as error:
        load_settings(_env(tmp_path, config_file))
    assert str(config_file) in str(error.value)


def test_secrets_file_in_the_data_folder_sits_under_the_yaml(tmp_path):
    config_file = _write_yaml(tmp_path / "platform.yaml", {"port": 8800, "courses": {}})
    (tmp_path / "data").mkdir()
    _write_yaml(tmp_path / "data" / "secrets.yaml", {"port": 1, "proxy_auth_token": "t" * 40}, mode=0o600)
    settings = load_settings(_env(tmp_path, config_file))
    assert settings.port == 8800 and settings.proxy_auth_token == "t" * 40
    c = Config()
    apply_settings(c, settings)
    assert c.ConfigurableHTTPProxy.auth_token == "t" * 40


def test_a_secrets_file_others_can_read_is_refused(tmp_path):
    config_file = _write_yaml(tmp_path / "platform.yaml", {})
    (tmp_path / "data").mkdir()
    secrets = _write_yaml(tmp_path / "data" / "secrets.yaml", {"proxy_auth_token": "t" * 40}, mode=0o644)
    with pytest.raises(ConfigError, match=f"{secrets}.*chmod 600"):
        load_settings(_env(tmp_path, config_file))


@pytest.mark.parametrize("data, key, problem", [
    ({"prot": 8000}, "prot", "unknown setting"),
    ({"port": "eighty"}, "port", "not of type 'integer'"),
    ({"courses": {"ai101": {"formgrader_port": 8010, "instructor": ["x"]}}}, "courses.ai101.instructor", "unknown setting"),
    ({"courses": {"ai101": {"students": ["x"]}}}, "courses.ai101", "'formgrader_port' is a required property"),
    ({"courses": {"ai101": {"formgrader_port": 70000}}}, "courses.ai101.formgrader_port", "greater than the maximum"),
    ({"accounts": {"lockout_seconds": -1}}, "accounts.lockout_seconds", "less than the minimum"),
    ({"profiles": {"cpu": {"display_name": "CPU", "mem_limit": "4GB"}}}, "profiles.cpu.mem_limit", "does not match"),
    ({"profiles": {"cpu": {"description": "no name"}}}, "profiles.cpu", "'display_name' is a required property"),
])
def test_schema_errors_name_the_file_and_the_key(tmp_path, data, key, problem):
    config_file = _write_yaml(tmp_path / "platform.yaml", data)
    with pytest.raises(ConfigError) as raised:
        load_settings(_env(tmp_path, config_file))
    assert f"{config_file}: {key}: " in str(raised.value) and problem in str(raised.value)


def test_unreadable_yaml_and_a_missing_named_file_are_reported(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("courses: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{broken}: not valid YAML"):
        load_settings(_env(tmp_path, broken))
    with pytest.raises(ConfigError, match="nowhere.yaml: configuration file not found"):
        load_settings(_env(tmp_path, tmp_path / "nowhere.yaml"))


def test_two_services_on_one_port_are_refused(tmp_path):
    config_file = _write_yaml(tmp_path / "platform.yaml", {"courses": {
        "ca": {"formgrader_port": 9100}, "cb": {"formgrader_port": 9100}}})
    with pytest.raises(ConfigError, match="courses.cb.formgrader_port: port 9100 is already used by courses.ca"):
        load_settings(_env(tmp_path, config_file))


def test_environment_renames_the_first_course_and_keeps_its_settings(tmp_path):
    config_file = _write_yaml(tmp_path / "platform.yaml", {"courses": {
        "ai101": {"formgrader_port": 8010, "title": "AI", "instructors": ["ian"]}}})
    settings = load_settings(_env(tmp_path, config_file, AICOURSE_COURSE_ID="demo9", AICOURSE_FORMGRADER_PORT="9999"))
    assert settings.courses == (CourseSettings("demo9", 9999, title="AI", instructors=("ian",)),)


def test_the_repository_yaml_takes_another_course_id_from_the_environment(tmp_path):
    settings = load_settings({"AICOURSE_DATA_DIR": str(tmp_path), "AICOURSE_COURSE_ID": "demo2"})
    assert [course.course_id for course in settings.courses] == ["demo2"]


def test_relative_paths_in_the_yaml_are_relative_to_its_folder(tmp_path):
    (tmp_path / "conf").mkdir()
    config_file = _write_yaml(tmp_path / "conf" / "platform.yaml", {
        "data_dir": "../state", "courses": {"c1": {"formgrader_port": 9001, "course_dir": "course-c1"}}})
    settings = load_settings({"AICOURSE_CONFIG": str(config_file)})
    assert settings.data_dir == tmp_path / "state"
    assert settings.course("c1").course_dir == tmp_path / "conf" / "course-c1"


def test_settings_from_config_needs_no_files():
    config = layered_config(secrets={}, admin={"courses": {"x": {"formgrader_port": 9002}}}, environ={})
    assert settings_from_config(config).courses[0].course_id == "x"


# --- roles ------------------------------------------------------------------------------------


def _roles(c) -> dict[str, dict]:
    return {role["name"]: role for role in c.JupyterHub.load_roles}


def test_each_role_holds_only_its_own_scopes(tmp_path):
    courses = (
        CourseSettings("ai101", 9010, instructors=("ian",), graders=("gus",), students=("sam",)),
        CourseSettings("ml201", 9011, instructors=("ivy",), students=("stu",)),
    )
    c, _ = _applied(tmp_path, courses=courses, admins=("ada",), cohort_admins=("cora",))
    roles = _roles(c)
    assert roles["student"]["scopes"] == ["self"]
    assert roles["student"]["groups"] == ["nbgrader-ai101", "nbgrader-ml201"]
    assert roles["grader-ai101"]["groups"] == ["formgrade-ai101"]
    assert roles["instructor-ai101"]["users"] == ["ian"]
    # Everything an instructor or grader of ai101 may do is filtered to ai101 or its students.
    for name in ("grader-ai101", "instructor-ai101"):
        assert all(scope.endswith(("!service=ai101", "!group=nbgrader-ai101")) for scope in roles[name]["scopes"]), name
    # The formgrader services need no role of their own: only the idle culler and the HTTP exchange
    # (the default) have one, and the formgraders may call the exchange.
    assert [name for name, role in roles.items() if "services" in role] == [
        "idle-culler", "nbgrader-exchange", "nbgrader-exchange-client"]
    assert roles["nbgrader-exchange-client"]["services"] == ["ai101", "ml201"]
    assert roles["cohort-admin"]["users"] == ["cora"]
    assert all(scope.startswith(("read:", "list:")) for scope in roles["cohort-admin"]["scopes"])
    assert "admin" not in roles and c.Authenticator.admin_users == {"ada"}
    assert c.JupyterHub.load_groups["formgrade-ai101"]["users"] == ["ian", "gus"]
    assert c.PlatformAuthenticator.initial_users == ["ada", "cora", "ian", "gus", "sam", "ivy", "stu"]


# --- students' JupyterLab ---------------------------------------------------------------------

STUDENT_DIR = STUDENT_JUPYTER_CONFIG


def _installed_plugin_ids() -> str:
    """The text of the installed JupyterLab and nbgrader bundles, where plugin ids are declared."""
    share = Path(sys.prefix) / "share" / "jupyter"
    bundles = [*(share / "lab" / "static").glob("*.js"), *(share / "labextensions" / "@jupyter" / "nbgrader").rglob("*.js")]
    return "".join(path.read_text(errors="replace") for path in bundles)


def test_the_student_lab_disables_plugins_that_exist():
    disabled = json.loads((STUDENT_DIR / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    assert set(disabled) == {
        "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list",
        "@jupyterlab/apputils-extension:announcements",
        # The language-server client: its server extension is off for students, and the client asks
        # /lsp/status as soon as it exists (a 404 on every Lab load, tests/integration/test_first_week.py).
        "@jupyterlab/lsp-extension:plugin", "@jupyterlab/lsp-extension:settings",
        "@jupyterlab/notebook-extension:language-server", "@jupyterlab/fileeditor-extension:language-server",
    }
    # A renamed plugin in a newer release would silently come back: the ids must be real.
    bundles = _installed_plugin_ids()
    assert all(f'"{plugin_id}"' in bundles for plugin_id in disabled)
    # Students keep what they need: the Assignments list and Validate.
    assert '"@jupyter/nbgrader:assignment-list"' in bundles and "@jupyter/nbgrader:assignment-list" not in disabled


def test_the_student_server_runs_without_the_formgrader_extension():
    (server_config,) = (STUDENT_DIR / "jupyter_server_config.d").glob("*.json")
    extensions = json.loads(server_config.read_text())["ServerApp"]["jpserver_extensions"]
    # Instructors' tools, and the language-server bridge no student uses (tests/hub/spawn/test_startup.py).
    assert extensions == {"nbgrader.server_extensions.formgrader": False, "nbgrader.server_extensions.course_list": False,
                          "jupyter_lsp": False,
                          # Reports lessons run to the seats service; idle without seats (grader/seats/lesson_reports.py).
                          "grader.seats.lesson_reports": True,
                          # /user/<name>/formgrader leads to the course's formgrader service (grader/hub/spawn/servers.py).
                          "grader.hub.spawn.servers": True}


def test_servers_read_the_platform_jupyter_config_first(tmp_path):
    c, _ = _applied(tmp_path)
    assert c.Spawner.environment["JUPYTER_CONFIG_PATH"] is jupyter_config_path_for


def test_the_formgrader_service_may_be_framed_by_the_hub_only(tmp_path):
    c, _ = _applied(tmp_path)
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "demo1"]
    staff_dir = Path(service["environment"]["JUPYTER_CONFIG_PATH"])
    headers = json.loads((staff_dir / "jupyter_server_config.json").read_text())["ServerApp"]["tornado_settings"]["headers"]
    assert headers == {"Content-Security-Policy": "frame-ancestors 'self'"}


# --- idle culling -----------------------------------------------------------------------------


def test_the_idle_culler_runs_as_a_service_that_may_only_stop_servers(tmp_path):
    c, settings = _applied(tmp_path)
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "idle-culler"]
    assert service["command"][1:] == ["-m", "jupyterhub_idle_culler", "--timeout=3600", "--cull-every=300"]
    assert "url" not in service  # it serves nothing
    (role,) = [r for r in c.JupyterHub.load_roles if r.get("services") == ["idle-culler"]]
    assert sorted(role["scopes"]) == ["delete:servers", "list:users", "read:servers", "read:users:activity"]


def test_idle_culling_is_set_in_the_yaml_and_can_be_turned_off(tmp_path):
    config_file = _write_yaml(tmp_path / "platform.yaml", {"idle_culler": {"timeout": 600, "max_age": 86400}})
    settings = load_settings(_env(tmp_path, config_file))
    assert (settings.idle_culler.timeout, settings.idle_culler.cull_every, settings.idle_culler.max_age) == (600, 300, 86400)
    c = Config()
    apply_settings(c, settings)
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "idle-culler"]
    assert "--timeout=600" in service["command"] and "--max-age=86400" in service["command"]
    _write_yaml(config_file, {"idle_culler": {"enabled": False}})
    off = Config()
    apply_settings(off, load_settings(_env(tmp_path, config_file)))
    assert [s["name"] for s in off.JupyterHub.services] == ["nbgrader-exchange"] and not [r for r in off.JupyterHub.load_roles if r["name"] == "idle-culler"]


def test_users_servers_cull_their_idle_kernels_as_the_yaml_says(tmp_path):
    c, _ = _applied(tmp_path)
    assert c.Spawner.args == ["--MappingKernelManager.cull_idle_timeout=1800", "--MappingKernelManager.cull_interval=60",
                              "--MappingKernelManager.cull_connected=True", "--MappingKernelManager.cull_busy=False"]
    config_file = _write_yaml(tmp_path / "platform.yaml", {"kernel_culler": {"timeout": 0}})
    c = Config()
    apply_settings(c, load_settings(_env(tmp_path, config_file)))
    assert c.Spawner.args == []  # 0: never
    bad = _write_yaml(tmp_path / "bad.yaml", {"kernel_culler": {"cull_every": 0}})
    with pytest.raises(ConfigError, match="kernel_culler.cull_every"):
        load_settings(_env(tmp_path, bad))


def test_the_hub_process_finds_alembic_and_hears_sigint(monkeypatch):
    """JupyterHub's upgrade_db runs `alembic` from PATH; a hub started as a background job inherits
    SIGINT ignored, and every service and server it starts would ignore the hub's stop signal."""
    import signal

    from grader.hub.lifecycle import prepare_process, ready_banner

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        prepare_process()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert os.environ["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    banner = ready_banner("http://127.0.0.1:8000", {"instructor": "pw1"}, courses=["ai101"])
    assert banner.rstrip().splitlines()[-1].startswith("=")
    assert "user: instructor   password: pw1" in banner and "http://127.0.0.1:8000/services/ai101/formgrader" in banner
