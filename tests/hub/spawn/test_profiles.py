"""Spawn profiles: who sees which, GPU detection, and an allocator that never shares a GPU."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from traitlets.config import Config

from grader.hub.config import apply_settings
from grader.hub.layers import ConfigError
from grader.hub.settings import Profile, load_settings
from grader.hub.spawn.profiles import GpuAllocator, GpuInventory, ProfileError, ProfileSpawning, detect_gpus

CPU = Profile("cpu", "CPU: 2 cores, 4 GB", cpu_limit=2, mem_limit="4G")
GPU = Profile("gpu", "GPU: 1 GPU, 16 GB", cpu_limit=4, mem_limit="16G", gpus=1, groups=("gpu-users",))
BIG_GPU = Profile("gpu2", "Two GPUs", gpus=2, groups=("gpu-users",))


def _listing(stdout: str, returncode: int = 0):
    def run(command, **kwargs):
        if returncode:
            raise subprocess.CalledProcessError(returncode, command, stderr="NVIDIA-SMI has failed")
        return subprocess.CompletedProcess(command, 0, stdout=stdout, stderr="")
    return run


# --- detection --------------------------------------------------------------------------------


def test_no_nvidia_smi_means_no_gpu_and_says_so():
    inventory = detect_gpus(environ={}, which=lambda name: None)
    assert inventory.devices == () and "no GPU (nvidia-smi not found)" in inventory.reason_none


def test_nvidia_smi_lists_the_gpus():
    inventory = detect_gpus(environ={}, which=lambda name: "/usr/bin/nvidia-smi", run=_listing("0\n1\n"))
    assert inventory == GpuInventory(("0", "1"))


def test_a_failing_nvidia_smi_means_no_gpu():
    inventory = detect_gpus(environ={}, which=lambda name: "/usr/bin/nvidia-smi", run=_listing("", returncode=9))
    assert inventory.devices == () and "nvidia-smi failed" in inventory.reason_none


@pytest.mark.parametrize("visible, devices", [("2,3", ("2", "3")), ("", ()), ("-1", ())])
def test_cuda_visible_devices_of_the_hub_wins(visible, devices):
    inventory = detect_gpus(environ={"CUDA_VISIBLE_DEVICES": visible}, which=lambda name: "/usr/bin/nvidia-smi",
                            run=_listing("0\n1\n2\n3\n"))
    assert inventory.devices == devices
    assert bool(inventory.reason_none) == (not devices)


# --- the allocator ----------------------------------------------------------------------------


def test_two_servers_never_share_a_gpu():
    allocator = GpuAllocator(["0", "1"])
    first, second = allocator.claim("ann/", 1), allocator.claim("ben/", 1)
    assert first != second and sorted(first + second) == ["0", "1"]
    with pytest.raises(ProfileError, match="all 2 GPUs are in use"):
        allocator.claim("cy/", 1)
    allocator.release("ann/")
    assert allocator.claim("cy/", 1) == first


def test_a_restarted_server_gets_a_gpu_again_without_leaking_its_old_one():
    allocator = GpuAllocator(["0", "1"])
    allocator.claim("ann/", 1)
    allocator.claim("ann/", 1)
    assert len(allocator.held_by("ann/")) == 1 and len(allocator.free()) == 1


def test_a_refused_claim_changes_nothing_for_others():
    allocator = GpuAllocator(["0"])
    allocator.claim("ann/", 1)
    with pytest.raises(ProfileError):
        allocator.claim("ben/", 2)
    assert allocator.held_by("ann/") == ["0"]


# --- choosing a profile -----------------------------------------------------------------------


def test_groups_decide_which_profiles_a_user_sees():
    spawning = ProfileSpawning([CPU, GPU], GpuInventory(("0",)))
    assert spawning.allowed({"nbgrader-ai101"}) == [CPU]
    assert spawning.allowed({"nbgrader-ai101", "gpu-users"}) == [CPU, GPU]
    with pytest.raises(ProfileError, match="may not use the profile 'gpu'"):
        spawning.start("ann/", {"nbgrader-ai101"}, {"profile": "gpu"})
    with pytest.raises(ProfileError, match="may not use the profile 'nonsense'"):
        spawning.start("ann/", {"gpu-users"}, {"profile": "nonsense"})


def test_the_gpu_profile_claims_a_gpu_and_the_second_user_is_told_why_not():
    spawning = ProfileSpawning([CPU, GPU], GpuInventory(("0",)))
    profile, devices = spawning.start("ann/", {"gpu-users"}, {"profile": "gpu"})
    assert profile == GPU and devices == ["0"]
    with pytest.raises(ProfileError, match="GPU: 1 GPU, 16 GB is not available: all 1 GPUs are in use"):
        spawning.start("ben/", {"gpu-users"}, {"profile": "gpu"})
    assert spawning.start("ben/", {"gpu-users"}, {"profile": "cpu"}) == (CPU, [])
    # Ann restarts on CPU: her GPU goes back.
    spawning.start("ann/", {"gpu-users"}, {"profile": "cpu"})
    assert spawning.start("ben/", {"gpu-users"}, {"profile": "gpu"}) == (GPU, ["0"])


def test_without_a_choice_the_first_available_profile_is_used():
    spawning = ProfileSpawning([GPU, CPU], GpuInventory((), "this machine has no GPU (nvidia-smi not found)"))
    assert spawning.start("ann/", {"gpu-users"}, {}) == (CPU, [])


def test_without_a_gpu_the_form_shows_the_gpu_profile_disabled_with_the_reason():
    spawning = ProfileSpawning([CPU, GPU, BIG_GPU], GpuInventory((), "this machine has no GPU (nvidia-smi not found)"))
    form = spawning.form_html({"gpu-users"})
    assert 'value="cpu" checked' in form
    assert 'value="gpu" disabled' in form and 'value="gpu2" disabled' in form
    assert "Not available: this machine has no GPU (nvidia-smi not found)" in form
    with pytest.raises(ProfileError, match="not available: this machine has no GPU"):
        spawning.start("ann/", {"gpu-users"}, {"profile": "gpu"})
    # Someone who may not pick the GPU profile does not see it at all.
    assert "gpu" not in spawning.form_html({"nbgrader-ai101"}).lower().replace("cpu", "")


def test_a_profile_needing_more_gpus_than_the_machine_has_says_so():
    spawning = ProfileSpawning([CPU, BIG_GPU], GpuInventory(("0",)))
    assert "needs 2 GPUs and this machine has 1" in spawning.form_html({"gpu-users"})


def test_the_form_escapes_what_the_yaml_says():
    spawning = ProfileSpawning([Profile("x", "<b>big</b>", description="a & b")], GpuInventory(()))
    assert "&lt;b&gt;big&lt;/b&gt;" in spawning.form_html(set()) and "a &amp; b" in spawning.form_html(set())


def test_no_profiles_no_form():
    assert ProfileSpawning([], GpuInventory(())).form_html({"anything"}) == ""
    # ... and a start without options needs none (tests/hub/test_courses.py starts servers so).


# --- the hooks JupyterHub calls: refusals are SpawnExceptions -------------------------------------


class _Group:
    def __init__(self, name):
        self.name = name


class _User:
    """The few attributes of JupyterHub's User the hooks read (no hub runs in these tests)."""

    def __init__(self, name, *groups, admin=False):
        self.name, self.groups, self.admin = name, [_Group(g) for g in groups], admin


def _spawner(user, **user_options):
    from jupyterhub.spawner import LocalProcessSpawner

    spawner = LocalProcessSpawner(user=user)
    spawner.user_options = user_options
    return spawner


def test_a_refused_start_is_a_spawn_exception_with_its_reason_and_nothing_is_prepared():
    import asyncio

    from jupyterhub.spawner import SpawnException

    prepared = []

    async def prepare(spawner):
        prepared.append(spawner.user.name)

    spawning = ProfileSpawning([CPU, GPU, BIG_GPU], GpuInventory(("0",)), prepare=prepare)

    async def scenario():
        ann = _spawner(_User("ann", "gpu-users"), profile="gpu")
        await spawning.pre_spawn_hook(ann)
        assert ann.environment["CUDA_VISIBLE_DEVICES"] == "0" and ann.mem_limit == 16 * 1024**3
        refusals = {}
        for name, groups, profile in [("ben", ["gpu-users"], "gpu"), ("cy", ["nbgrader-ai101"], "gpu"),
                                      ("dee", ["gpu-users"], "gpu2")]:
            with pytest.raises(SpawnException) as refused:
                await spawning.pre_spawn_hook(_spawner(_User(name, *groups), profile=profile))
            refusals[name] = (refused.value.reason, refused.value.status_code, refused.value.message)
        return refusals

    refusals = asyncio.run(scenario())
    # Every GPU taken: try again later (503); not a profile of yours (400); more GPUs than the machine has (400).
    assert refusals["ben"] == ("gpu", 503, "GPU: 1 GPU, 16 GB is not available: all 1 GPUs are in use; try again later.")
    assert refusals["cy"] == ("profile", 400, "You may not use the profile 'gpu'.")
    assert refusals["dee"][:2] == ("gpu", 400) and "needs 2 GPUs and this machine has 1" in refusals["dee"][2]
    assert prepared == ["ann"]  # the home of a refused start is left alone
    assert spawning.allocator.held_by("ann/") == ["0"]


def test_apply_user_options_refuses_nothing_so_jupyterhub_logs_no_traceback():
    # JupyterHub 6 logs any exception from apply_user_options with a traceback; the checks are in the
    # pre-spawn hook, whose SpawnException it logs as one line.
    spawning = ProfileSpawning([CPU], GpuInventory(()))
    assert spawning.apply_user_options(_spawner(_User("ann"), profile="nonsense"), {"profile": "nonsense"}) is None


# --- from the YAML ----------------------------------------------------------------------------


def test_profiles_and_gpus_come_from_the_yaml(tmp_path):
    config_file = tmp_path / "platform.yaml"
    config_file.write_text(yaml.safe_dump({
        "gpu_devices": [0, 1],
        "groups": {"gpu-users": ["ann"]},
        "profiles": {
            "cpu": {"display_name": "CPU: 2 cores, 4 GB", "cpu_limit": 2, "mem_limit": "4G"},
            "gpu": {"display_name": "GPU: 1 GPU, 16 GB", "mem_limit": "16G", "gpus": 1, "groups": ["gpu-users"]},
        },
    }))
    settings = load_settings({"AICOURSE_CONFIG": str(config_file), "AICOURSE_DATA_DIR": str(tmp_path / "data")})
    assert settings.profiles == (Profile("cpu", "CPU: 2 cores, 4 GB", cpu_limit=2, mem_limit="4G"),
                                 Profile("gpu", "GPU: 1 GPU, 16 GB", mem_limit="16G", gpus=1, groups=("gpu-users",)))
    assert settings.gpu_devices == ("0", "1") and "ann" in settings.users()
    c = Config()
    apply_settings(c, settings)
    assert c.JupyterHub.load_groups["gpu-users"] == {"users": ["ann"]}
    spawning = c.Spawner.pre_spawn_hook.__self__
    assert spawning.allocator.devices == ("0", "1")
    assert c.Spawner.options_form.__self__ is spawning and c.Spawner.post_stop_hook.__self__ is spawning
    # The home is prepared after the checks, by the same hook.
    assert spawning.prepare is not None and spawning.prepare.__name__ == "pre_spawn_hook"
    # Every Spawner gets a deep copy of the config's hooks (traitlets): all keep the one GPU allocator.
    import copy

    assert copy.deepcopy(c.Spawner.pre_spawn_hook).__self__.allocator is spawning.allocator


def test_the_repository_yaml_offers_a_cpu_and_a_gpu_profile(tmp_path):
    settings = load_settings({"AICOURSE_DATA_DIR": str(tmp_path)})
    cpu, gpu = settings.profiles
    assert (cpu.display_name, cpu.cpu_limit, cpu.mem_limit, cpu.gpus) == ("CPU: 2 cores, 4 GB", 2, "4G", 0)
    assert (gpu.display_name, gpu.mem_limit, gpu.gpus) == ("GPU: 1 GPU, 16 GB", "16G", 1)
    assert gpu.groups and not cpu.groups


def test_a_profile_naming_an_unknown_group_is_refused(tmp_path):
    config_file = tmp_path / "platform.yaml"
    config_file.write_text(yaml.safe_dump({"groups": {"gpu-users": []}, "profiles": {
        "gpu": {"display_name": "GPU", "gpus": 1, "groups": ["gpu-user"]}}}))
    with pytest.raises(ConfigError, match="profiles.gpu.groups: no group 'gpu-user'.*known: gpu-users"):
        load_settings({"AICOURSE_CONFIG": str(config_file), "AICOURSE_DATA_DIR": str(tmp_path / "data")})
