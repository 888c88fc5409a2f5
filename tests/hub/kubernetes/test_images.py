"""The container images agree with the versions the tests run, and the hub image's config file works.

No image is built here (no container daemon, no registry but PyPI): the Dockerfiles are read and
checked, and the file the hub image adds to the chart's ``jupyterhub_config.d`` is run the way the
chart runs it, on the settings file the values mount.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from grader.hub.kubernetes.pod_nbgrader import EXCHANGE_URL_ENV
from grader.hub.kubernetes.values import (
    HELM_DIR,
    HUB_CONTENT_DIR,
    HUB_IMAGE_PACKAGE_DIR,
    HUB_IMAGE_PYTHON,
    ProfileAccess,
    constraint_versions,
    image_tag,
    platform_layers,
    render_values,
)
from grader.hub.spawn.servers import STAFF_JUPYTER_CONFIG
from grader.resources import HUB_CONFIG_DIR, PACKAGE_DIR, REPO_ROOT, TEMPLATES_DIR

IMAGES_DIR = HUB_CONFIG_DIR / "images"
SINGLEUSER = {"cpu": IMAGES_DIR / "Dockerfile.cpu", "gpu": IMAGES_DIR / "Dockerfile.gpu"}
HUB_DOCKERFILE = IMAGES_DIR / "hub" / "Dockerfile"
CONFIG_D_FILE = IMAGES_DIR / "hub" / "jupyterhub_config.d" / "50-aicourse.py"
POD_NBGRADER_CONFIG = IMAGES_DIR / "singleuser" / "nbgrader_config.py"
# Jupyter's system config folder for the images' Python (python:3.11 images: sys.prefix /usr/local).
IMAGE_JUPYTER_CONFIG_DIR = "/usr/local/etc/jupyter"


def copies(dockerfile) -> list[tuple[str, str]]:
    """(source, destination) of each COPY line, one pair per source."""
    pairs = []
    for sources, destination in re.findall(r"^COPY (.+) (\S+)$", dockerfile.read_text(), re.M):
        pairs += [(source, destination) for source in sources.split()]
    return pairs


def build_args(dockerfile) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile.read_text(), re.M))


def installed_pins(dockerfile) -> dict[str, str]:
    """``name==version`` requirements the Dockerfile installs, with its ARGs substituted."""
    text = dockerfile.read_text()
    for name, value in build_args(dockerfile).items():
        text = text.replace("${" + name + "}", value)
    return {re.sub(r"\[.*\]", "", name).lower().replace("_", "-"): version
            for name, version in re.findall(r'"?([A-Za-z0-9_.\-\[\]]+)==([0-9][^"\s]*)"?', text)}


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_torch_and_tensorflow_are_the_versions_the_tests_use(variant):
    pins = constraint_versions()
    args = build_args(SINGLEUSER[variant])
    assert args["TORCH_VERSION"] == pins["torch"]
    assert args["TENSORFLOW_VERSION"] == pins["tensorflow-cpu"]
    installed = installed_pins(SINGLEUSER[variant])
    assert installed["torch"] == pins["torch"]
    assert installed["tensorflow-cpu" if variant == "cpu" else "tensorflow"] == pins["tensorflow-cpu"]
    # Everything else comes from the same constraints file.
    assert "-c /opt/aicourse/requirements/constraints.txt" in SINGLEUSER[variant].read_text()


def test_cpu_image_has_cpu_builds_and_gpu_image_cuda_builds():
    cpu, gpu = SINGLEUSER["cpu"].read_text(), SINGLEUSER["gpu"].read_text()
    assert "download.pytorch.org/whl/cpu" in cpu and "tensorflow-cpu==" in cpu and "and-cuda" not in cpu
    # PyPI's Linux torch wheel is the CUDA build; TensorFlow's CUDA libraries come with [and-cuda].
    assert "whl/cpu" not in gpu and "tensorflow[and-cuda]==" in gpu and "tensorflow-cpu" not in gpu


@pytest.mark.parametrize("dockerfile", [*SINGLEUSER.values(), HUB_DOCKERFILE], ids=lambda p: p.parent.name + "/" + p.name)
def test_images_are_pinned_and_run_unprivileged(dockerfile):
    text = dockerfile.read_text()
    (base,) = re.findall(r"^FROM (\S+)", text, re.M)
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", base), base
    assert re.search(r"^USER 1000$", text, re.M)
    # Every file the Dockerfile copies exists, so a build from the repository root finds it.
    for sources in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in sources.split():
            assert (REPO_ROOT / source).exists(), source


def test_image_tags_follow_the_constraints():
    pins = constraint_versions()
    assert image_tag("gpu") == f"torch{pins['torch']}-tf{pins['tensorflow-cpu']}-gpu"
    rendered = yaml.safe_load((HELM_DIR / "platform.values.yaml").read_text())
    assert rendered["singleuser"]["image"]["tag"] == image_tag("cpu")


def test_hub_image_matches_the_chart_version_it_is_deployed_with():
    chart_version = re.search(r"^CHART_VERSION=(\S+)$", (HELM_DIR / "deploy.sh").read_text(), re.M).group(1)
    values = yaml.safe_load((HELM_DIR / "values.yaml").read_text())
    assert values["hub"]["image"]["tag"].startswith(chart_version + "-")
    hub = "\n".join(line for line in HUB_DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert "/usr/local/etc/jupyterhub/jupyterhub_config.d/" in hub
    # KubeSpawner through the k8s extra; no course frameworks (the hub extra has none, see
    # tests/integration/test_environment.py).
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "[hub,k8s]" in hub and any(r.startswith("jupyterhub-kubespawner") for r in extras["k8s"])
    assert "torch" not in hub and "tensorflow" not in hub


def test_the_config_d_file_applies_the_mounted_platform_settings(tmp_path, monkeypatch):
    # As in the hub pod: platform.yaml is the file hub.extraFiles mounts (taken from the rendered
    # values), the data folder the pod's volume, and the chart has already set profile_list.
    rendered = yaml.safe_load((HELM_DIR / "platform.values.yaml").read_text())
    mounted = tmp_path / "platform.yaml"
    mounted.write_text(yaml.safe_dump(rendered["hub"]["extraFiles"]["platform-yaml"]["data"]))
    monkeypatch.setenv("AICOURSE_CONFIG", str(mounted))
    monkeypatch.setenv("AICOURSE_DATA_DIR", str(tmp_path / "data"))
    c = Config()
    c.KubeSpawner.profile_list = rendered["singleuser"]["profileList"]
    # The chart exec()s each file with its own globals, `c` among them.
    exec(compile(CONFIG_D_FILE.read_text(), CONFIG_D_FILE.name, "exec"), {"c": c})
    assert isinstance(c.KubeSpawner.profile_list, ProfileAccess)
    assert c.JupyterHub.authenticator_class == "grader.hub.auth.local.PlatformAuthenticator"
    assert (tmp_path / "data" / "courses" / "ai101").is_dir()
    # Seats are checked and metered at each start, through KubeSpawner's hooks.
    assert c.KubeSpawner.pre_spawn_hook == c.KubeSpawner.profile_list.pre_spawn_hook
    assert c.KubeSpawner.profile_list.policy is not None
    # The formgrader runs in the hub pod beside the exchange service: it calls it on the pod's loopback.
    course_config = (tmp_path / "data" / "courses" / "ai101" / "nbgrader_config.py").read_text()
    assert "c.HttpExchange.service_url = 'http://127.0.0.1:8011/services/nbgrader-exchange/'" in course_config
    # The sign-up and login pages: package data, found where the package is installed.
    (templates,) = c.JupyterHub.template_paths
    assert Path(templates) == TEMPLATES_DIR == PACKAGE_DIR / "hub" / "data" / "templates"


def _pip_installs(dockerfile) -> list[str]:
    """The arguments of each ``pip install`` in the Dockerfile, continuation lines joined."""
    text = dockerfile.read_text().replace("\\\n", " ")
    return [line.split("pip install", 1)[1] for line in text.splitlines() if "pip install" in line]


def test_the_hub_image_installs_the_package_with_the_hub_extras_not_a_hand_list():
    (install,) = _pip_installs(HUB_DOCKERFILE)
    # A regular install (a wheel built from the copied source): its package data goes to
    # site-packages, where the hub pod's config finds the templates and Jupyter folders.
    assert '"/opt/aicourse[hub,k8s]"' in install.split()
    assert "--no-deps" not in install and " -e " not in install
    assert "-c /opt/aicourse/requirements/constraints.txt" in install
    # Only pycurl beside the package: everything else comes from the extras.
    assert [arg for arg in install.split() if not arg.startswith("-") and "aicourse" not in arg] == ["pycurl==7.45.7"]
    assert ("grader", "/opt/aicourse/grader") in copies(HUB_DOCKERFILE)
    assert not any(source.startswith("hub_config/templates") or source == "hub_config"
                   for source, _ in copies(HUB_DOCKERFILE))


def test_the_hub_image_site_packages_is_where_the_rendered_values_point():
    # The rendered hub.services name the staff Jupyter folder by its path in the image: the image's
    # Python (its base image tag) decides where site-packages is.
    (base,) = re.findall(r"^FROM python:(\d+\.\d+)\.", HUB_DOCKERFILE.read_text(), re.M)
    assert base == HUB_IMAGE_PYTHON
    assert HUB_IMAGE_PACKAGE_DIR.as_posix() == f"/usr/local/lib/python{base}/site-packages/grader"
    services = render_values(platform_layers())["hub"]["services"]
    staff = {service["environment"]["JUPYTER_CONFIG_PATH"] for service in services.values()
             if "JUPYTER_CONFIG_PATH" in service.get("environment", {})}
    assert staff == {str(HUB_IMAGE_PACKAGE_DIR / STAFF_JUPYTER_CONFIG.relative_to(PACKAGE_DIR))}
    assert staff == {f"/usr/local/lib/python{base}/site-packages/grader/hub/data/jupyter/staff"}


def test_the_hub_pod_is_told_where_the_content_is():
    # Installed from a wheel, the hub pod has no checkout to default content_dir to.
    values = yaml.safe_load((HELM_DIR / "values.yaml").read_text())
    assert values["hub"]["extraEnv"]["AICOURSE_CONTENT_DIR"] == HUB_CONTENT_DIR


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_singleuser_images_carry_the_pod_nbgrader_config(variant):
    assert ("hub_config/images/singleuser/nbgrader_config.py",
            f"{IMAGE_JUPYTER_CONFIG_DIR}/nbgrader_config.py") in copies(SINGLEUSER[variant])


def _pod_environ() -> dict[str, str]:
    # What a user's pod has: the exchange's URL from the rendered values, the user from the hub.
    rendered = yaml.safe_load((HELM_DIR / "platform.values.yaml").read_text())
    return {EXCHANGE_URL_ENV: rendered["singleuser"]["extraEnv"][EXCHANGE_URL_ENV], "JUPYTERHUB_USER": "student"}


def test_the_pod_nbgrader_config_selects_the_http_exchange(monkeypatch):
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange import ExchangeFactory

    from grader.exchange.plugins import HttpExchange, List, ReleaseAssignment, Submit

    environ = _pod_environ()
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    # Loaded as nbgrader loads a config file from Jupyter's config path.
    config = PyFileConfigLoader(POD_NBGRADER_CONFIG.name, path=str(POD_NBGRADER_CONFIG.parent)).load_config()
    factory = ExchangeFactory(config=config)
    assert (factory.submit, factory.list, factory.release_assignment) == (Submit, List, ReleaseAssignment)
    coursedir = CourseDirectory(config=config)
    assert coursedir.student_id == "student"
    exchange = HttpExchange(config=config, coursedir=coursedir, authenticator=None)
    assert exchange.service_url == environ[EXCHANGE_URL_ENV] == "http://hub:8011/services/nbgrader-exchange/"
    assert exchange.path_includes_course is True


def test_nbgrader_in_a_pod_calls_the_exchange_at_the_url_from_its_environment(tmp_path):
    # Real nbgrader, with the file in a folder on its config path (as /usr/local/etc/jupyter in the
    # image) and the environment a pod gets; the URL points at a port nothing listens on, so
    # nbgrader's error shows which URL it called.
    config_dir = tmp_path / "etc-jupyter"
    config_dir.mkdir()
    shutil.copy(POD_NBGRADER_CONFIG, config_dir / "nbgrader_config.py")
    (tmp_path / "home").mkdir()
    url = "http://127.0.0.1:9/services/nbgrader-exchange/"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "JUPYTER_CONFIG_PATH": str(config_dir),
           "JUPYTERHUB_USER": "student", "JUPYTERHUB_API_TOKEN": "a-server-token", EXCHANGE_URL_ENV: url}
    result = subprocess.run([sys.executable, "-m", "nbgrader", "list", "--course", "ai101"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"cannot reach the exchange at {url}api/courses/ai101/assignments" in result.stderr
