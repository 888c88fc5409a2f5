"""The hub pod as chart 4.4.0 runs it, with the platform's JupyterHub: its config loads and the hub starts.

The chart's hub pod runs ``jupyterhub --config /usr/local/etc/jupyterhub/jupyterhub_config.py``: the
chart's own config file (``files/hub/jupyterhub_config.py``), which reads the values from a mounted
Secret through its ``z2jh.py`` and then runs the hub image's ``jupyterhub_config.d``. The chart was
made for the JupyterHub of its image (5.5.0); the hub image upgrades it to the platform's 6.1. Here
that combination is put together as the pod has it, from the merged values deploy.sh gives helm,
with the unpacked chart's files (the same text, their /usr/local/etc/jupyterhub paths moved into a
temporary folder), and JupyterHub's own start-up runs on it, up to serving.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from grader.hub.kubernetes.values import (
    HUB_CONFIG_FILE,
    HUB_CONTENT_DIR,
    HUB_DATA_DIR,
    kubernetes_config,
    platform_layers,
    render_values,
)
from grader.hub.roles import server_token_scopes
from grader.hub.settings import settings_from_config
from grader.hub.spawn.singleuser import kernel_culling_args
from grader.resources import HUB_CONFIG_DIR, REPO_ROOT
from grader.seats.lesson_reports import URL_ENV as LESSONS_URL_ENV
from tests.hub.kubernetes.chart import RELEASE, chart_values, helm_merge, merged_values

POD_CONFIG_DIR = "/usr/local/etc/jupyterhub"
CONFIG_D = HUB_CONFIG_DIR / "images" / "hub" / "jupyterhub_config.d"
NAMESPACE = "aicourse-staging"
# The ports Kubernetes puts in the environment for the chart's Services.
SERVICE_PORTS = {"HUB_SERVICE_PORT": "8081", "PROXY_API_SERVICE_PORT": "8001"}


def lay_out_hub_pod(tmp_path: Path, chart: Path, env: str, extra_values: dict | None = None) -> tuple[Path, dict[str, str]]:
    """The hub pod's /usr/local/etc/jupyterhub (as ROOT), its platform volume and its environment,
    from ``env``'s merged values (and ``extra_values`` over them)."""
    root = tmp_path / "etc-jupyterhub"
    root.mkdir()
    # The chart's two files, as its ConfigMap mounts them, with the pod's paths moved under ROOT.
    for name in ("jupyterhub_config.py", "z2jh.py"):
        text = (chart / "files" / "hub" / name).read_text()
        assert POD_CONFIG_DIR in text, f"the chart's {name} no longer names {POD_CONFIG_DIR}"
        (root / name).write_text(text.replace(POD_CONFIG_DIR, str(root)))
    # The hub image's jupyterhub_config.d (hub_config/images/hub/Dockerfile copies the folder).
    shutil.copytree(CONFIG_D, root / "jupyterhub_config.d", ignore=shutil.ignore_patterns("__pycache__"))

    chart_meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    values = chart_values(chart, helm_merge(merged_values(env), extra_values or {}))
    assert values["fullnameOverride"] == "", "resource names are the short ones (hub, proxy-api, ...)"
    # The ConfigMap's resource names: with fullnameOverride "", each is its short name.
    config = (root / "jupyterhub_config.py").read_text()
    (root / "config").mkdir()
    for name in set(re.findall(r'get_name(?:_env)?\("([\w-]+)"', config)):
        (root / "config" / name).write_text(name)
    # The chart's Secret: the values (with Chart and Release), the generated secrets, the services' tokens.
    secret = root / "secret"
    secret.mkdir()
    (secret / "values.yaml").write_text(yaml.safe_dump({
        **values, "Chart": {"Name": chart_meta["name"], "Version": chart_meta["version"], "AppVersion": chart_meta["appVersion"]},
        "Release": {"Name": RELEASE, "Namespace": NAMESPACE, "Service": "Helm"}}))
    (secret / "hub.config.ConfigurableHTTPProxy.auth_token").write_text(secrets.token_hex(32))
    (secret / "hub.config.JupyterHub.cookie_secret").write_text(secrets.token_hex(32))
    (secret / "hub.config.CryptKeeper.keys").write_text(secrets.token_hex(32))
    for name in values["hub"]["services"]:
        (secret / f"hub.services.{name}.apiToken").write_text(secrets.token_hex(32))
    if values["hub"]["db"].get("password"):
        (secret / "hub.db.password").write_text(values["hub"]["db"]["password"])

    # hub.extraFiles and hub.extraVolumes, under tmp_path: the pod's paths mapped to folders here.
    moved = {HUB_DATA_DIR: str(tmp_path / "srv-aicourse"), HUB_CONTENT_DIR: str(REPO_ROOT),
             HUB_CONFIG_FILE: str(tmp_path / "platform.yaml")}
    extra_files = values["hub"]["extraFiles"]
    assert extra_files["platform-yaml"]["mountPath"] == HUB_CONFIG_FILE == values["hub"]["extraEnv"]["AICOURSE_CONFIG"]
    for name, extra_file in extra_files.items():  # the branding logo (binaryData), if any
        if name != "platform-yaml":
            moved[extra_file["mountPath"]] = str(tmp_path / Path(extra_file["mountPath"]).name)
            Path(moved[extra_file["mountPath"]]).write_bytes(base64.b64decode(extra_file["binaryData"]))
    platform = extra_files["platform-yaml"]["data"]
    if platform.get("branding", {}).get("logo"):
        platform = {**platform, "branding": {**platform["branding"], "logo": moved[platform["branding"]["logo"]]}}
    Path(moved[HUB_CONFIG_FILE]).write_text(yaml.safe_dump(platform))
    Path(moved[HUB_DATA_DIR]).mkdir()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "none", "user": {"token": "unused"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}]}))
    environ = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT),
        # The chart's Deployment: its own variables, then hub.extraEnv.
        "PYTHONUNBUFFERED": "1", "HELM_RELEASE_NAME": RELEASE, "POD_NAMESPACE": NAMESPACE,
        "CONFIGPROXY_AUTH_TOKEN": (secret / "hub.config.ConfigurableHTTPProxy.auth_token").read_text(),
        **{name: moved.get(value, value) for name, value in values["hub"]["extraEnv"].items()},
        **SERVICE_PORTS,
        # No cluster here: KubeSpawner's client is made from a kubeconfig naming nothing.
        "KUBECONFIG": str(kubeconfig),
    }
    return root, environ


def run_hub_pod(tmp_path: Path, chart: Path, env: str, mode: str, extra_values: dict | None = None) -> tuple[dict, str]:
    root, environ = lay_out_hub_pod(tmp_path, chart, env, extra_values)
    workdir = tmp_path / "srv-jupyterhub"  # the image's WORKDIR, where sqlite-pvc's volume is mounted
    workdir.mkdir()
    result = subprocess.run([sys.executable, "-m", "tests.hub.kubernetes.hub_pod", str(root), mode],
                            cwd=workdir, env=environ, capture_output=True, text=True, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("HUB-POD ")]
    return json.loads(line.removeprefix("HUB-POD ")), output


def test_the_chart_config_starts_the_platforms_jupyterhub(tmp_path, chart):
    summary, output = run_hub_pod(tmp_path, chart, "staging", "initialize")
    # The platform's JupyterHub, not the chart image's 5.5.
    assert summary["jupyterhub"].startswith("6.1.")
    # Every option the chart's config and ours set is one JupyterHub 6 and KubeSpawner know.
    assert "not recognized" not in output and "Traceback" not in output, output[-4000:]
    # The chart's config ran ...
    assert f"Loading {tmp_path}/etc-jupyterhub/secret/values.yaml" in output
    assert summary["http_client"] == "CurlAsyncHTTPClient"
    assert summary["spawner_class"] == "kubespawner.spawner.KubeSpawner"
    assert summary["db_url"] == "sqlite:///jupyterhub.sqlite" and (tmp_path / "srv-jupyterhub" / "jupyterhub.sqlite").exists()
    assert summary["proxy_api_url"] == "http://proxy-api:8001" and summary["hub_connect_url"] == "http://hub:8081/hub/"
    assert summary["cookie_secret"]
    # ... then the image's jupyterhub_config.d: the platform's authenticator, groups and courses.
    assert "Loading /usr/local/etc/jupyterhub/jupyterhub_config.d config: 50-aicourse.py" not in output
    assert "config: 50-aicourse.py" in output
    assert summary["authenticator"] == "PlatformAuthenticator"
    assert {"formgrade-ai101", "nbgrader-ai101", "gpu-users"} <= set(summary["groups"])
    assert (tmp_path / "srv-aicourse" / "courses" / "ai101").is_dir()
    # hub.services and hub.loadRoles reached JupyterHub, beside the chart's own culler.
    assert summary["services"] == sorted(["ai101", "jupyterhub-idle-culler", "nbgrader-exchange", "seats"])
    assert {"grader-ai101", "instructor-ai101", "nbgrader-exchange", "nbgrader-exchange-client",
            "jupyterhub-idle-culler"} <= set(summary["roles"])
    # A user's server: the chart's KubeSpawner settings and the platform's, together.
    spawner = summary["spawner"]
    values = merged_values("staging")
    assert spawner["class"] == "KubeSpawner" and spawner["namespace"] == "aicourse-staging"
    assert spawner["image"] == f"{values['singleuser']['image']['name']}:{values['singleuser']['image']['tag']}"
    assert (spawner["start_timeout"], spawner["http_timeout"]) == (600, 120)  # hub.config.KubeSpawner
    assert spawner["storage_capacity"] == "5Gi" and spawner["scheduler_name"] == "user-scheduler"
    assert spawner["chart_label"] == "jupyterhub-4.4.0"
    assert spawner["node_affinity_required"] == [{"matchExpressions": [
        {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}]}]
    assert spawner["environment"]["GRADER_EXCHANGE_URL"] == "http://hub:8011/services/nbgrader-exchange/"
    assert spawner["init_containers"] == ["block-cloud-metadata"]
    assert (spawner["profile_list"], spawner["pre_spawn_hook"]) == ("ProfileAccess", "ProfileAccess")
    settings = settings_from_config(kubernetes_config())
    assert spawner["server_token_scopes"] == sorted(server_token_scopes(settings))
    # Lessons run are reported by users' servers to the seats service in the hub pod.
    assert spawner["environment"][LESSONS_URL_ENV] == "http://hub:8020/services/seats/api/lesson-runs"
    # Users' servers cull their idle kernels, as on one machine: the image's command, then its options.
    culling = settings.kernel_culler
    assert spawner["cmd"] == ["jupyterhub-singleuser"]
    assert spawner["args"][-4:] == kernel_culling_args(culling.timeout, culling.cull_every, culling.cull_connected)
    # The platform's title on the hub's pages (its login.html and page.html), JupyterHub's logo.
    assert {"aicourse_title": settings.branding.title, "aicourse_logo": False}.items() <= summary["template_vars"].items()
    assert summary["logo_file"].endswith("/share/jupyterhub/static/images/jupyterhub-80.png")  # JupyterHub's own


def test_the_branding_logo_rides_in_the_values_to_the_hub_pages(tmp_path, chart):
    # A logo named in platform.yaml, on the machine that renders the values: the hub pod gets the
    # file from hub.extraFiles and shows it, with the title, on its pages.
    platform = yaml.safe_load((HUB_CONFIG_DIR / "platform.yaml").read_text())
    platform["branding"] = {"title": "Deep Learning at Example U", "logo": "brand/logo.svg"}
    (tmp_path / "admin" / "brand").mkdir(parents=True)
    logo = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    (tmp_path / "admin" / "brand" / "logo.svg").write_bytes(logo)
    (tmp_path / "admin" / "platform.yaml").write_text(yaml.safe_dump(platform))
    rendered = render_values(platform_layers(admin_path=tmp_path / "admin" / "platform.yaml"))
    summary, output = run_hub_pod(tmp_path, chart, "staging", "initialize", {"hub": {"extraFiles": rendered["hub"]["extraFiles"]}})
    assert "not recognized" not in output and "Traceback" not in output, output[-4000:]
    assert {"aicourse_title": "Deep Learning at Example U", "aicourse_logo": True}.items() <= summary["template_vars"].items()
    assert Path(summary["logo_file"]).read_bytes() == logo and Path(summary["logo_file"]).parent == tmp_path


def test_production_config_loads_with_postgresql_and_its_password(tmp_path, chart):
    # Its database cannot be reached here: the config is loaded, not started.
    summary, output = run_hub_pod(tmp_path, chart, "production", "load")
    assert "not recognized" not in output
    values = merged_values("production")
    assert summary["db_url"] == values["hub"]["db"]["url"]
    assert summary["pgpassword"] == values["hub"]["db"]["password"]  # the chart's hub.db.password, as PGPASSWORD
    assert summary["spawner_class"] == "kubespawner.KubeSpawner"
    assert "seats" in summary["services"] and "jupyterhub-idle-culler" in summary["services"]


def test_an_option_jupyterhub_does_not_know_shows_in_the_hubs_log(tmp_path, chart):
    # What the first test's "not recognized" check catches: here a misspelt KubeSpawner trait.
    _, output = run_hub_pod(tmp_path, chart, "staging", "initialize", {"hub": {"config": {"KubeSpawner": {"start_timout": 5}}}})
    assert "Config option `start_timout` not recognized by `KubeSpawner`" in output


@pytest.mark.parametrize("name", ["jupyterhub_config.py", "z2jh.py"])
def test_only_the_pods_paths_are_moved_in_the_charts_files(tmp_path, chart, name):
    root, _ = lay_out_hub_pod(tmp_path, chart, "staging")
    original = (chart / "files" / "hub" / name).read_text()
    assert (root / name).read_text().replace(str(root), POD_CONFIG_DIR) == original
