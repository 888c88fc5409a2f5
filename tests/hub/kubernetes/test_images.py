"""The container images agree with the versions the tests run, and the hub image's config file works.

No image is built here (no container daemon, no registry but PyPI): the Dockerfiles are read and
checked, the scripts their RUN lines use are run against the repository's files, and the file the
hub image adds to the chart's ``jupyterhub_config.d`` is run the way the chart runs it, on the
settings file the values mount (tests/hub/kubernetes/test_hub_pod.py runs the chart's whole config).
"""

from __future__ import annotations

import os
import re
import shlex
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
from tests.hub.kubernetes.chart import chart_version

IMAGES_DIR = HUB_CONFIG_DIR / "images"
SINGLEUSER = {"cpu": IMAGES_DIR / "Dockerfile.cpu", "gpu": IMAGES_DIR / "Dockerfile.gpu"}
HUB_DOCKERFILE = IMAGES_DIR / "hub" / "Dockerfile"
CONFIG_D_FILE = IMAGES_DIR / "hub" / "jupyterhub_config.d" / "50-aicourse.py"
GPU_REQUIREMENTS = IMAGES_DIR / "singleuser" / "gpu_requirements.py"
CONSTRAINTS = "/opt/aicourse/requirements/constraints.txt"
POD_NBGRADER_CONFIG = IMAGES_DIR / "singleuser" / "nbgrader_config.py"
# Jupyter's system config folder for the images' Python (python:3.11 images: sys.prefix /usr/local).
IMAGE_JUPYTER_CONFIG_DIR = "/usr/local/etc/jupyter"


def copies(dockerfile) -> list[tuple[str, str]]:
    """(source, destination) of each COPY line, one pair per source."""
    pairs = []
    for sources, destination in re.findall(r"^COPY (.+) (\S+)$", dockerfile.read_text(), re.M):
        pairs += [(source, destination) for source in sources.split()]
    return pairs


def _pip_installs(dockerfile) -> list[list[str]]:
    """The arguments of each ``pip install`` in the Dockerfile's RUN lines (continuation lines
    joined), split as the shell splits them."""
    text = dockerfile.read_text().replace("\\\n", " ")
    return [shlex.split(command.split("pip install", 1)[1])
            for line in text.splitlines() if line.startswith("RUN ")
            for command in line.split("&&") if "pip install" in command]


def _requirements(args: list[str]) -> list[str]:
    """What a ``pip install`` names to install (not its options or their values)."""
    takes_value = {"-c", "-r", "--index-url", "--extra-index-url", "-e"}
    names, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
            if arg == "-e":
                names.append("-e " + args[args.index("-e") + 1])
        elif not arg.startswith("-"):
            names.append(arg)
    return names


def _extras(requirement: str) -> set[str]:
    return set(re.search(r"\[(.*)\]", requirement).group(1).split(","))


def test_no_dockerfile_declares_a_build_arg():
    # Versions come from the constraints file the tests install from, not from ARGs beside it.
    for dockerfile in [*SINGLEUSER.values(), HUB_DOCKERFILE]:
        assert not re.search(r"^ARG ", dockerfile.read_text(), re.M), dockerfile


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_singleuser_images_install_the_extras_with_the_constraints(variant):
    dependencies, package = [args for args in _pip_installs(SINGLEUSER[variant]) if "--index-url" not in args]
    # The dependencies: the platform's extras and JupyterHub (jupyterhub-singleuser), every version
    # from the constraints file, none by hand.
    assert "--no-deps" not in dependencies
    assert dependencies[dependencies.index("-c") + 1] == CONSTRAINTS
    named = _requirements(dependencies)
    (extras,) = [name for name in named if name.startswith("/opt/aicourse[")]
    assert [name for name in named if name != extras] == ["jupyterhub"]
    assert not any("==" in name for name in named)
    assert _extras(extras) == ({"grading", "course"} if variant == "cpu" else {"grading"})
    # The package itself, afterwards and without dependencies: all of them are installed above.
    assert _requirements(package) == ["-e /opt/aicourse"] and "--no-deps" in package
    assert "pip check" in SINGLEUSER[variant].read_text()


def test_the_cpu_image_takes_torch_at_the_constraints_version_from_the_cpu_index():
    (torch,) = [args for args in _pip_installs(SINGLEUSER["cpu"]) if "--index-url" in args]
    assert torch[torch.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu" and "--no-deps" in torch
    (requirement,) = _requirements(torch)
    # The version is read from the constraints file when the image is built: run that command here.
    command = re.search(r"\$\((.*)\)", requirement).group(1).replace(CONSTRAINTS, str(REPO_ROOT / "requirements" / "constraints.txt"))
    version = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True).stdout.strip()
    assert requirement.startswith("torch==") and version == constraint_versions()["torch"]
    text = SINGLEUSER["cpu"].read_text()
    assert "and-cuda" not in text and "gpu_requirements" not in text


def test_the_gpu_image_has_the_course_extra_with_tensorflows_cuda_build():
    text = SINGLEUSER["gpu"].read_text()
    assert "whl/cpu" not in text  # PyPI's Linux torch wheel is the CUDA build
    (dependencies,) = [args for args in _pip_installs(SINGLEUSER["gpu"]) if "-r" in args]
    assert dependencies[dependencies.index("-r") + 1] == "/opt/aicourse/requirements/gpu.txt"
    assert "gpu_requirements.py /opt/aicourse > /opt/aicourse/requirements/gpu.txt" in text
    assert (GPU_REQUIREMENTS.relative_to(REPO_ROOT).as_posix(), "/opt/aicourse/requirements/gpu_requirements.py") in copies(SINGLEUSER["gpu"])
    # The script run on the repository, laid out as in the image (pyproject.toml, requirements/).
    result = subprocess.run([sys.executable, str(GPU_REQUIREMENTS), str(REPO_ROOT)], capture_output=True, text=True, check=True)
    requirements = result.stdout.split()
    course = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["course"]
    pins = constraint_versions()
    assert f"tensorflow[and-cuda]=={pins['tensorflow-cpu']}" in requirements
    assert [r for r in requirements if not r.startswith("tensorflow[")] == [r for r in course if not r.startswith("tensorflow-cpu")]
    assert not any(r.startswith("tensorflow-cpu") for r in requirements)


def test_the_gpu_requirements_refuse_an_extra_without_tensorflow(tmp_path):
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "constraints.txt").write_text("tensorflow_cpu==2.21.0\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[project.optional-dependencies]\ncourse = ["torch>=2.4"]\n')
    result = subprocess.run([sys.executable, str(GPU_REQUIREMENTS), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0 and "names no tensorflow-cpu" in result.stderr


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


def test_hub_image_is_the_charts_own_at_the_version_deployed(chart):
    # The chart's hub image at the chart's version is the base; this image's tag starts with it too.
    (base,) = re.findall(r"^FROM (\S+)", HUB_DOCKERFILE.read_text(), re.M)
    charts_hub = yaml.safe_load((chart / "values.yaml").read_text())["hub"]["image"]
    assert base == f"{charts_hub['name']}:{charts_hub['tag']}" == f"quay.io/jupyterhub/k8s-hub:{chart_version()}"
    values = yaml.safe_load((HELM_DIR / "values.yaml").read_text())
    assert values["hub"]["image"]["tag"].startswith(chart_version() + "-aicourse.")
    # Installed where the chart's config looks for jupyterhub_config.d.
    config = (chart / "files" / "hub" / "jupyterhub_config.py").read_text()
    assert 'config_dir = "/usr/local/etc/jupyterhub/jupyterhub_config.d"' in config
    assert ("hub_config/images/hub/jupyterhub_config.d/", "/usr/local/etc/jupyterhub/jupyterhub_config.d/") in copies(HUB_DOCKERFILE)


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


def test_the_hub_image_installs_the_package_with_the_hub_extras_not_a_hand_list():
    (install,) = _pip_installs(HUB_DOCKERFILE)
    # A regular install (a wheel built from the copied source): its package data goes to
    # site-packages, where the hub pod's config finds the templates and Jupyter folders.
    assert _requirements(install) == ["/opt/aicourse[hub,k8s]"]
    assert "--no-deps" not in install and "-e" not in install
    assert install[install.index("-c") + 1] == CONSTRAINTS
    # KubeSpawner through the k8s extra; no course frameworks (the hub extra has none, see
    # tests/integration/test_environment.py).
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("jupyterhub-kubespawner") for r in extras["k8s"])
    assert any(r.startswith("jupyterhub>=6.1") for r in extras["hub"])
    hub = "\n".join(line for line in HUB_DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert "torch" not in hub and "tensorflow" not in hub
    # On top of the chart's image: what it installed and the platform does not use, and that would
    # hold JupyterHub 6's SQLAlchemy back, goes; anything else in conflict fails the build.
    assert "pip uninstall --yes sqlalchemy-cockroachdb" in hub and "&& pip check" in hub
    assert ("grader", "/opt/aicourse/grader") in copies(HUB_DOCKERFILE)
    assert not any(source.startswith("hub_config/templates") or source == "hub_config"
                   for source, _ in copies(HUB_DOCKERFILE))
    # The image runs as the base image's unprivileged user after installing as root.
    assert re.findall(r"^USER (\S+)$", hub, re.M) == ["root", "1000"]


def test_the_hub_image_site_packages_is_where_the_rendered_values_point():
    # The rendered hub.services name the staff Jupyter folder by its path in the image, which the
    # base image's Python decides: the build checks that folder is there.
    (checked,) = re.findall(r"^RUN test -d (\S+)$", HUB_DOCKERFILE.read_text(), re.M)
    staff = HUB_IMAGE_PACKAGE_DIR / STAFF_JUPYTER_CONFIG.relative_to(PACKAGE_DIR)
    assert checked == str(staff) == f"/usr/local/lib/python{HUB_IMAGE_PYTHON}/site-packages/grader/hub/data/jupyter/staff"
    services = render_values(platform_layers())["hub"]["services"]
    paths = {service["environment"]["JUPYTER_CONFIG_PATH"] for service in services.values()
             if "JUPYTER_CONFIG_PATH" in service.get("environment", {})}
    assert paths == {checked}
    # quay.io/jupyterhub/k8s-hub:4.4.0 is built FROM python:3.12-slim-bookworm.
    assert HUB_IMAGE_PYTHON == "3.12"


def test_the_hub_pod_is_told_where_the_content_is():
    # Installed from a wheel, the hub pod has no checkout to default content_dir to.
    values = yaml.safe_load((HELM_DIR / "values.yaml").read_text())
    assert values["hub"]["extraEnv"]["AICOURSE_CONTENT_DIR"] == HUB_CONTENT_DIR


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_singleuser_images_carry_the_pod_nbgrader_config(variant):
    assert ("hub_config/images/singleuser/nbgrader_config.py",
            f"{IMAGE_JUPYTER_CONFIG_DIR}/nbgrader_config.py") in copies(SINGLEUSER[variant])


LESSON_REPORTS_CONFIG = IMAGES_DIR / "singleuser" / "jupyter_server_config.d" / "aicourse-lesson-reports.json"


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_singleuser_images_enable_the_lesson_reports_extension(variant):
    # On Jupyter's system config path of the images' Python, where every server reads it.
    assert ("hub_config/images/singleuser/jupyter_server_config.d/aicourse-lesson-reports.json",
            f"{IMAGE_JUPYTER_CONFIG_DIR}/jupyter_server_config.d/aicourse-lesson-reports.json") in copies(SINGLEUSER[variant])


def _lesson_reports_in_a_server(config_dir: Path, tmp_path: Path) -> str:
    """What a Jupyter server with ``config_dir`` on its config path makes of the extension."""
    script = (
        "from jupyter_server.serverapp import ServerApp\n"
        "app = ServerApp()\n"
        "app.find_server_extensions()\n"
        "app.init_server_extensions()\n"
        "print('ENABLED', app.jpserver_extensions.get('grader.seats.lesson_reports'))\n"
        "print('LOADED', 'grader.seats.lesson_reports' in app.extension_manager.extensions)\n")
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(config_dir), "JUPYTER_CONFIG_DIR": str(tmp_path / "home-jupyter")}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_a_server_reading_the_images_config_loads_the_lesson_reports_extension(tmp_path):
    # The image's /usr/local/etc/jupyter, here a folder: a Jupyter server started with it on its
    # config path enables grader.seats.lesson_reports and finds its extension point; without the
    # file, it does not.
    config_dir = tmp_path / "etc-jupyter"
    (config_dir / "jupyter_server_config.d").mkdir(parents=True)
    assert "ENABLED True" not in _lesson_reports_in_a_server(config_dir, tmp_path)
    shutil.copy(LESSON_REPORTS_CONFIG, config_dir / "jupyter_server_config.d" / LESSON_REPORTS_CONFIG.name)
    output = _lesson_reports_in_a_server(config_dir, tmp_path)
    assert "ENABLED True" in output and "LOADED True" in output, output


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
    # The list asks first which courses the student is enrolled in (grader.exchange.plugins.listing).
    assert f"cannot reach the exchange at {url}api/courses" in result.stderr
