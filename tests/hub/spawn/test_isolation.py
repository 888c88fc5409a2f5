"""The spawner modes, system accounts, file modes and per-server limits, without starting a hub.

The real hub in the secure mode is tested in tests/hub/spawn/test_secure_mode.py.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from traitlets.config import Config

from grader.hub import config as hub_config
from grader.hub.config import apply_settings, spawner_mode
from grader.hub.layers import ConfigError
from grader.hub.settings import load_settings
from grader.hub.spawn.homes import prepare_home_as_owner
from grader.hub.spawn.isolation import (
    account_name,
    announce,
    blocked_ancestor,
    check_demo_as_root,
    check_reachable,
    harden_data_dir,
    resolve_mode,
)
from grader.hub.spawn.limits import (
    GpuDevices,
    ServerGroup,
    ServerLimits,
    cgroup_v1_writes,
    cgroup_v2_writes,
    detect_enforcement,
    join_groups,
    parse_bytes,
    systemd_properties,
    systemd_run_command,
    v1_device_rules,
)
from grader.hub.spawn.local_spawner import SecureSpawner
from tests.support.hubfixture import users_python_copies as hubfixture_copies

# Two GPUs, and the devices every CUDA process needs (nvidiactl, modeset, nvidia-uvm).
GPUS = GpuDevices({"0": (195, 0), "1": (195, 1)}, ((195, 255), (195, 254), (508, 0)))


# --- which mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, euid, expected", [("auto", 0, "secure"), ("auto", 1000, "demo"),
                                                  ("demo", 1000, "demo"), ("secure", 0, "secure"),
                                                  ("demo", 0, "demo")])
def test_auto_is_secure_as_root_and_demo_otherwise(mode, euid, expected):
    assert resolve_mode(mode, euid=euid) == expected


def test_the_secure_mode_needs_root():
    with pytest.raises(ConfigError, match="secure needs the hub to run as root"):
        resolve_mode("secure", euid=1000)


def test_demo_mode_as_root_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="run every student's server as root.*--allow-root.*spawner.mode: secure"):
        check_demo_as_root(euid=0, allow_root_demo=False)
    check_demo_as_root(euid=0, allow_root_demo=True)  # a throw-away test hub
    check_demo_as_root(euid=1000, allow_root_demo=False)


def test_make_hub_as_root_starts_the_secure_mode_with_the_http_exchange(tmp_path, monkeypatch):
    """`make hub` runs hub_config/jupyterhub_config.py with the repository's YAML."""
    settings = load_settings({"AICOURSE_DATA_DIR": str(tmp_path)})
    assert settings.spawner.mode == "auto" and settings.exchange.backend == "http"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert spawner_mode(settings) == "secure"
    c = Config()
    apply_settings(c, settings)
    assert c.JupyterHub.spawner_class == "grader.hub.spawn.local_spawner.SecureSpawner"
    assert c.SecureSpawner.homes_dir == str(tmp_path / "homes")
    assert "--allow-root" not in c.Spawner.cmd
    assert c.JupyterHub.template_vars["aicourse_spawner_mode"] == "secure"
    assert "nbgrader-exchange" in {service["name"] for service in c.JupyterHub.services}


def test_a_normal_user_gets_the_demo_mode_without_allow_root(tmp_path, monkeypatch):
    settings = load_settings({"AICOURSE_DATA_DIR": str(tmp_path)})
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    c = Config()
    apply_settings(c, settings)
    assert c.JupyterHub.spawner_class == "simple" and "--allow-root" not in c.Spawner.cmd
    assert c.JupyterHub.template_vars["aicourse_spawner_mode"] == "demo"


def test_the_mode_and_homes_come_from_the_yaml_and_the_environment(tmp_path):
    config_file = tmp_path / "platform.yaml"
    config_file.write_text(yaml.safe_dump({"spawner": {"mode": "demo", "homes_dir": "homes-here", "max_tasks": 300},
                                           "exchange": {"backend": "files"}}))
    env = {"AICOURSE_CONFIG": str(config_file), "AICOURSE_DATA_DIR": str(tmp_path / "data")}
    settings = load_settings(env)
    assert (settings.spawner.mode, settings.spawner.max_tasks) == ("demo", 300)
    assert settings.homes_dir == tmp_path / "homes-here"  # relative to the YAML's folder
    overridden = load_settings({**env, "AICOURSE_SPAWNER_MODE": "secure", "AICOURSE_ALLOW_ROOT_DEMO": "yes",
                                "AICOURSE_EXCHANGE_PORT": "9123"})
    assert overridden.spawner.mode == "secure" and overridden.spawner.allow_root_demo
    assert overridden.exchange.service_port == 9123
    config_file.write_text(yaml.safe_dump({"spawner": {"mode": "sandboxed"}}))
    with pytest.raises(ConfigError, match="spawner.mode"):
        load_settings(env)


def test_the_start_says_which_mode(capsys):
    announce("demo", user="ann")
    assert "DEMO MODE" in capsys.readouterr().err
    announce("secure", user="root", enforcement="cgroup1")
    assert "secure mode" in capsys.readouterr().err


# --- accounts -----------------------------------------------------------------------------------


def test_account_names_are_safe_distinct_and_short():
    assert account_name("ann") == "jupyter-ann"
    odd = account_name("Ann.Lee@x.org")
    assert odd.startswith("jupyter-ann-lee-x-org-") and odd != account_name("ann-lee-x-org")
    long = account_name("a" * 60)
    assert len(long) <= 32 and long != account_name("a" * 59)
    assert all(c.isalnum() or c in "-_" for c in odd)


# --- limits -------------------------------------------------------------------------------------


def test_sizes_parse_as_jupyterhub_writes_them():
    assert parse_bytes("4G") == 4 * 1024**3 and parse_bytes("512M") == 512 * 1024**2 and parse_bytes(None) is None


def test_the_v1_groups_get_memory_cpu_and_tasks():
    writes = cgroup_v1_writes(ServerLimits(memory_bytes=4 * 1024**3, cpus=1.5, max_tasks=256), GPUS)
    assert writes == {
        "memory": [("memory.limit_in_bytes", str(4 * 1024**3)), ("memory.memsw.limit_in_bytes", str(4 * 1024**3))],
        "cpu": [("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "150000")],
        "pids": [("pids.max", "256")],
    }


def test_the_v2_group_gets_memory_cpu_and_tasks():
    assert cgroup_v2_writes(ServerLimits(memory_bytes=1024, cpus=2, max_tasks=64)) == [
        ("memory.max", "1024"), ("memory.swap.max", "0"), ("cpu.max", "200000 100000"), ("pids.max", "64")]


@pytest.mark.parametrize("given, denied", [
    (("1",), ["c 195:0 rwm"]),
    (("0", "1"), []),
    # A CPU server: no GPU, and none of the devices that reach the driver either.
    ((), ["c 195:0 rwm", "c 195:1 rwm", "c 195:255 rwm", "c 195:254 rwm", "c 508:0 rwm"]),
])
def test_a_server_is_denied_every_gpu_it_was_not_given(given, denied):
    rules = v1_device_rules(ServerLimits(gpus=given), GPUS)
    assert rules == [("devices.deny", rule) for rule in denied]
    assert cgroup_v1_writes(ServerLimits(gpus=given), GPUS).get("devices", []) == rules


def test_no_fencing_without_gpus_to_fence():
    assert v1_device_rules(ServerLimits(gpus=None), GPUS) == []


def test_systemd_gets_the_same_limits_as_properties():
    assert systemd_properties(ServerLimits(memory_bytes=2048, cpus=0.5, max_tasks=100, gpus=("1",)), GPUS) == [
        "MemoryMax=2048", "MemorySwapMax=0", "CPUQuota=50%", "TasksMax=100",
        "DevicePolicy=closed", "DeviceAllow=char-pts rw", "DeviceAllow=/dev/nvidia1 rw",
        "DeviceAllow=/dev/nvidiactl rw", "DeviceAllow=/dev/nvidia-uvm rw", "DeviceAllow=/dev/nvidia-uvm-tools rw",
        "DeviceAllow=/dev/nvidia-modeset rw"]
    assert systemd_properties(ServerLimits(gpus=()), GPUS) == ["DevicePolicy=closed", "DeviceAllow=char-pts rw"]


def test_under_systemd_the_server_runs_in_a_scope_as_the_account():
    command = systemd_run_command(["python", "-m", "jupyterhub.singleuser"], unit="jupyter-ann-1a2b",
                                  limits=ServerLimits(memory_bytes=1024, max_tasks=50), devices=GPUS, uid=990, gid=985)
    assert command == ["systemd-run", "--scope", "--quiet", "--unit=jupyter-ann-1a2b", "--property=MemoryMax=1024",
                       "--property=MemorySwapMax=0", "--property=TasksMax=50", "--",
                       "setpriv", "--reuid=990", "--regid=985", "--init-groups", "--",
                       "python", "-m", "jupyterhub.singleuser"]
    assert "--allow-root" not in command


def _spawner(**traits):
    defaults = dict(environment={}, fence_gpus=True, mem_limit=None, cpu_limit=None, max_tasks=None,
                    default_max_tasks=1024)
    return SimpleNamespace(**{**defaults, **traits})


def test_the_spawner_takes_its_limits_from_the_profile_and_the_allocated_gpus():
    spawner = _spawner(mem_limit=4 * 1024**3, cpu_limit=2.0, max_tasks=200,
                       environment={"CUDA_VISIBLE_DEVICES": "1"})
    assert SecureSpawner.server_limits(spawner, GPUS) == ServerLimits(4 * 1024**3, 2.0, 200, ("1",))
    assert SecureSpawner.server_limits(_spawner(environment={"CUDA_VISIBLE_DEVICES": ""}), GPUS).gpus == ()
    # No profiles: no allocation to fence by; no GPU on the machine: nothing to fence.
    assert SecureSpawner.server_limits(_spawner(), GPUS) == ServerLimits(max_tasks=1024)
    assert SecureSpawner.server_limits(_spawner(environment={"CUDA_VISIBLE_DEVICES": ""}), GpuDevices({})).gpus is None


def test_enforcement_is_detected(tmp_path):
    comm = tmp_path / "comm"
    comm.write_text("systemd\n")
    assert detect_enforcement(tmp_path / "cgroup", comm) == "systemd"
    comm.write_text("tini\n")
    (tmp_path / "cgroup").mkdir()
    (tmp_path / "cgroup" / "cgroup.controllers").write_text("cpu memory pids\n")
    assert detect_enforcement(tmp_path / "cgroup", comm) == ("cgroup2" if os.access(tmp_path, os.W_OK) else None)


@pytest.mark.skipif(os.geteuid() != 0 or detect_enforcement() != "cgroup1", reason="needs root and cgroup v1")
def test_the_kernel_enforces_a_device_rule(tmp_path):
    """No GPU here: a stand-in device node (1:3, what /dev/null is) denied the way a GPU would be."""
    node = tmp_path / "fake-gpu"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    group = ServerGroup(f"test-devices-{os.getpid()}", version=1)
    group.create(ServerLimits(max_tasks=64, gpus=()), GpuDevices({"0": (1, 3)}))
    try:
        opened = subprocess.run([sys.executable, "-c", f"open({str(node)!r}, 'rb').close()"],
                                preexec_fn=lambda: join_groups(group.join_files()), capture_output=True, text=True)
        assert opened.returncode != 0 and "PermissionError" in opened.stderr
        assert subprocess.run([sys.executable, "-c", f"open({str(node)!r}, 'rb').close()"]).returncode == 0
        assert (group.paths["pids"] / "pids.max").read_text().strip() == "64"
    finally:
        group.remove()
    assert not any(path.exists() for path in group.paths.values())


# --- who may read what --------------------------------------------------------------------------


def test_the_data_folder_is_the_hubs_but_for_the_homes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "accounts.sqlite", "seats.sqlite"):
        (data / name).write_text("secret")
        os.chmod(data / name, 0o644)
    for name in ("courses", "exchange-service", "exchange"):
        (data / name).mkdir(mode=0o755)
    repo_assignments = tmp_path / "assignments"
    repo_assignments.mkdir(mode=0o755)
    harden_data_dir(data, homes_dir=data / "homes", file_exchange=None, private_repo_dirs=[repo_assignments])

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)
    assert mode(data) == 0o711 and mode(data / "homes") == 0o711
    for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "accounts.sqlite", "seats.sqlite"):
        assert mode(data / name) == 0o600, name
    for name in ("courses", "exchange-service", "exchange"):  # no file exchange: its folder is private too
        assert mode(data / name) == 0o700, name
    assert mode(repo_assignments) & 0o007 == 0
    # With the file exchange, nbgrader's modes stay.
    os.chmod(data / "exchange", 0o1777)
    harden_data_dir(data, homes_dir=data / "homes", file_exchange=data / "exchange")
    assert mode(data / "exchange") == 0o1777


def test_a_python_users_cannot_reach_is_refused_by_name(tmp_path):
    private = tmp_path / "private"
    (private / "bin").mkdir(parents=True)
    os.chmod(private, 0o700)
    blocked = blocked_ancestor(private / "bin" / "python")  # pytest's own tmp folder is 0700 too
    assert blocked is not None and private.is_relative_to(blocked)
    with pytest.raises(ConfigError, match=f"since {blocked} is not enterable by others.*chmod o\\+x {blocked}"):
        check_reachable([private / "bin" / "python"])
    assert blocked_ancestor(Path("/usr/bin/env")) is None
    check_reachable([Path("/usr/bin/env")])


@pytest.fixture(scope="module")
def users_python_copies():
    with hubfixture_copies() as folder:
        yield folder


@pytest.fixture
def owned_home(users_python_copies):
    """A home owned by an unprivileged uid, with lessons to copy, in a folder every account can enter."""
    work = Path(tempfile.mkdtemp(prefix="aicourse-home-test-"))
    os.chmod(work, 0o755)
    (work / "lessons" / "01_intro").mkdir(parents=True, mode=0o755)
    os.chmod(work / "lessons", 0o755)
    (work / "lessons" / "01_intro" / "lesson.ipynb").write_text("{}")
    home = work / "home"
    home.mkdir(mode=0o700)
    os.chown(home, 54321, 54321)
    try:
        yield work, home
    finally:
        shutil.rmtree(work)


def _prepare(work, home):
    prepare_home_as_owner(home, username="ann", course_ids=["ai101"], exchange_root=work / "exchange",
                          courses_dir=work / "lessons", exchange_url="http://127.0.0.1:1/services/nbgrader-exchange/")


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_what_the_hook_copies_is_written_by_the_homes_owner(owned_home):
    work, home = owned_home
    _prepare(work, home)
    for path in (home / "courses", home / "courses" / "01_intro", home / "courses" / "01_intro" / "lesson.ipynb",
                 home / ".jupyter" / "nbgrader_config.py"):
        assert (path.stat().st_uid, path.stat().st_gid) == (54321, 54321), path
    assert "student_id = 'ann'" in (home / ".jupyter" / "nbgrader_config.py").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_a_link_planted_in_a_home_does_not_make_the_hub_write_elsewhere(owned_home):
    work, home = owned_home
    victim = work / "root-only.txt"
    victim.write_text("untouched")
    os.chmod(victim, 0o644)
    (home / ".jupyter").mkdir()
    os.chown(home / ".jupyter", 54321, 54321)
    (home / ".jupyter" / "nbgrader_config.py").symlink_to(victim)
    with pytest.raises(RuntimeError, match="as its owner"):
        _prepare(work, home)
    assert victim.read_text() == "untouched"


def test_the_hook_finds_the_home_with_any_spawner(tmp_path, monkeypatch):
    from grader.hub.spawn.homes import home_of
    assert home_of(SimpleNamespace(home_dir=str(tmp_path), user=SimpleNamespace(name="ann"))) == tmp_path
    # A spawner without home_dir (LocalProcessSpawner, systemdspawner): the account's home.
    monkeypatch.setattr("pwd.getpwnam", lambda name: SimpleNamespace(pw_dir=f"/home/{name}"))
    assert home_of(SimpleNamespace(user=SimpleNamespace(name="ann"))) == Path("/home/ann")


def test_prepare_machine_refuses_demo_as_root(tmp_path, monkeypatch):
    settings = load_settings({"AICOURSE_DATA_DIR": str(tmp_path), "AICOURSE_SPAWNER_MODE": "demo"})
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(ConfigError, match="demo as root"):
        hub_config.prepare_machine(settings)


def test_the_platform_yaml_cannot_ask_for_demo_mode_as_root(tmp_path):
    """Root demo mode (every student's code as root) is for the test suite's hubs: the environment
    can ask for it, a YAML file an admin edits cannot."""
    config = tmp_path / "platform.yaml"
    config.write_text("spawner:\n  mode: demo\n  allow_root_demo: true\n")
    with pytest.raises(ConfigError, match="allow_root_demo") as error:
        load_settings({"AICOURSE_CONFIG": str(config), "AICOURSE_DATA_DIR": str(tmp_path / "data")})
    assert str(config) in str(error.value)
    allowed = load_settings({"AICOURSE_CONFIG": str(_empty_yaml(tmp_path)),
                             "AICOURSE_DATA_DIR": str(tmp_path / "data"), "AICOURSE_ALLOW_ROOT_DEMO": "1"})
    assert allowed.spawner.allow_root_demo


def _empty_yaml(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("courses: {}\n")
    return path
