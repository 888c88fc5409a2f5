"""The Zero-to-JupyterHub values: merged in deploy.sh's order, validated, and driven by platform.yaml.

No Kubernetes cluster or Helm binary can be had here, so: the merged values of each environment
are validated against the chart's own ``values.schema.json``, as helm validates them, from an
unpacked chart of deploy.sh's version (tests/hub/kubernetes/chart.py says where it is looked for;
without one these tests fail, they never skip); the profiles are turned into real pod specs by
KubeSpawner's own pod builder and those, like the grading worker's pod and network policy, are
validated against the Kubernetes API schemas that kubernetes-validate ships.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import kubernetes_asyncio.config.kube_config
import kubernetes_validate
import pytest
import yaml
from jupyterhub.spawner import SpawnException
from kubespawner.objects import make_pod
from kubespawner.spawner import KubeSpawner
from sqlalchemy import select
from traitlets.config import Config

from grader.exchange.plugins.base import URL_ENV
from grader.exchange.service import SERVICE_NAME as EXCHANGE_SERVICE
from grader.hub.kubernetes.pod_nbgrader import EXCHANGE_URL_ENV
from grader.hub.kubernetes.values import (
    GPU_RESOURCE,
    HELM_DIR,
    HUB_SERVICE_HOST,
    LOGO_MAX_BYTES,
    RENDERED_VALUES_PATH,
    ProfileAccess,
    _in_hub_pod,
    apply_kubernetes_settings,
    image_tag,
    kubernetes_config,
    platform_layers,
    render_values,
    rendered_values_text,
)
from grader.hub.layers import ConfigError, merge_layers
from grader.hub.roles import server_token_scopes
from grader.hub.services.exchange import exchange_roles
from grader.hub.services.seats import seats_policy
from grader.hub.settings import settings_from_config
from grader.hub.spawn.singleuser import kernel_culling_args
from grader.resources import REPO_ROOT
from grader.seats.db import close_seats_db
from grader.seats.lesson_reports import URL_ENV as LESSONS_URL_ENV
from grader.seats.models import UsageRecord
from grader.seats.store import assign_seat, create_cohort, create_organisation, revoke_seat
from tests.hub.kubernetes.chart import (
    CHART_DIR_ENV,
    SECRET_EXAMPLE,
    ChartNotFound,
    chart_values,
    chart_version,
    deploy_order,
    environments,
    helm_merge,
    load_values_file,
    locate_chart,
    merged_values,
)

ENVIRONMENTS = environments()
# The Kubernetes version the manifests are checked against (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.32.0"


def test_helm_merge_merges_maps_and_replaces_lists():
    base = {"hub": {"db": {"type": "sqlite-pvc", "pvc": {"storage": "1Gi"}}, "services": {"a": {"url": "x"}}},
            "singleuser": {"profileList": [{"slug": "cpu"}, {"slug": "gpu"}]}, "debug": {"enabled": True}}
    overlay = {"hub": {"db": {"type": "postgres"}, "services": {"b": {"url": "y"}}},
               "singleuser": {"profileList": [{"slug": "big"}]}, "debug": None}
    assert helm_merge(base, overlay) == {
        "hub": {"db": {"type": "postgres", "pvc": {"storage": "1Gi"}}, "services": {"a": {"url": "x"}, "b": {"url": "y"}}},
        "singleuser": {"profileList": [{"slug": "big"}]},
    }
    assert base["hub"]["db"]["type"] == "sqlite-pvc", "inputs are not changed"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_deploy_applies_base_rendered_overlay_then_secrets(env):
    assert deploy_order(env) == ["values.yaml", "platform.values.yaml", f"{env}.values.yaml",
                                 f"{env}.secret.values.yaml"]
    assert all((HELM_DIR / name).exists() for name in deploy_order(env)[:3])


def test_the_overlay_wins_over_the_base():
    # production.values.yaml changes one key of hub.db and keeps the base's others.
    production = merged_values("production")
    assert production["hub"]["db"]["type"] == "postgres"
    assert production["hub"]["db"]["pvc"] == load_values_file("values.yaml")["hub"]["db"]["pvc"]
    assert merged_values("staging")["hub"]["db"]["type"] == "sqlite-pvc"


# --- the chart's schema -----------------------------------------------------------------------------

def schema_errors(chart: Path, values: dict) -> list[str]:
    """Where ``values`` break the chart's values.schema.json, once merged over the chart's defaults
    (what helm validates before it renders anything)."""
    schema = json.loads((chart / "values.schema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(chart_values(chart, values))]


def test_every_environment_overlay_is_deployed_and_validated():
    assert ENVIRONMENTS == ["production", "staging"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_merged_values_validate_against_the_chart_schema(chart, env):
    assert schema_errors(chart, merged_values(env)) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_values_rendered_now_validate_against_the_chart_schema(chart, env):
    # What values.py generates from the settings as they are now, in the rendered file's place.
    rendered = render_values(platform_layers())
    assert schema_errors(chart, merged_values(env, {"platform.values.yaml": rendered})) == []


@pytest.mark.parametrize("mistake, where", [
    ({"hub": {"db": {"type": "postgresql"}}}, "hub.db.type"),
    ({"singleuser": {"storage": {"capacty": "10Gi"}}}, "singleuser.storage"),
    ({"cull": {"timeout": "1h"}}, "cull.timeout"),
    ({"hub": {"extraFiles": {"platform-yaml": {"mountPath": None, "path": "/etc/x.yaml"}}}}, "hub.extraFiles.platform-yaml"),
    ({"singleuser": {"profileList": {"cpu": {}}}}, "singleuser.profileList"),
    ({"hub": {"servises": {}}}, "hub"),
])
def test_the_chart_schema_rejects_mistakes(chart, mistake, where):
    values = helm_merge(merged_values("staging"), mistake)
    assert any(error.startswith(where + ":") for error in schema_errors(chart, values)), schema_errors(chart, values)


def test_the_chart_is_the_version_deployed(chart):
    assert chart_version() == "4.4.0"
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["version"] == chart_version()


def test_the_chart_is_found_where_ci_and_developers_have_it(tmp_path, monkeypatch):
    def unpack(where):
        where.mkdir(parents=True)
        (where / "values.schema.json").write_text("{}")
        (where / "Chart.yaml").write_text(f"name: jupyterhub\nversion: {chart_version()}\n")
        return where

    checkout, shared = tmp_path / "clone" / "main", tmp_path / "work-shared"
    checkout.mkdir(parents=True)
    name = f"jupyterhub-{chart_version()}"
    # None anywhere: a failure that says where it looked and how to get the chart.
    with pytest.raises(ChartNotFound) as missing:
        locate_chart({}, checkout, shared)
    assert str(checkout.parent / "shared" / "z2jh" / name) in str(missing.value)
    assert str(shared / name) in str(missing.value) and f"{CHART_DIR_ENV}=" in str(missing.value)
    # Each place found, and each earlier one in the order wins over the later: the variable, then the
    # copy beside the checkout (CI's clone in another folder has one), then the shared folder.
    unpack(shared / name)
    assert locate_chart({}, checkout, shared) == shared / name
    unpack(checkout.parent / "shared" / "z2jh" / name)
    assert locate_chart({}, checkout, shared) == checkout.parent / "shared" / "z2jh" / name
    pulled = unpack(tmp_path / "pulled" / "jupyterhub")
    assert locate_chart({CHART_DIR_ENV: str(pulled)}, checkout, shared) == pulled
    # A variable naming nothing fails, rather than quietly validating against another chart.
    with pytest.raises(ChartNotFound, match=f"{CHART_DIR_ENV}"):
        locate_chart({CHART_DIR_ENV: str(tmp_path / "nowhere")}, checkout, shared)
    # So does a chart of another version.
    (pulled / "Chart.yaml").write_text("name: jupyterhub\nversion: 4.2.0\n")
    with pytest.raises(ChartNotFound, match="is version 4.2.0"):
        locate_chart({CHART_DIR_ENV: str(pulled)}, checkout, shared)


def test_no_copy_of_the_chart_or_its_schema_in_the_repository(chart):
    names = {"values.schema.json", "values.schema.yaml", "z2jh.py"}
    found = [path for path in (REPO_ROOT / "hub_config").rglob("*") if path.name in names or "schema" in path.name]
    assert found == []
    assert not (REPO_ROOT / "hub_config" / "helm" / "z2jh-values.schema.json").exists()


# --- rendered from platform.yaml --------------------------------------------------------------------

def test_rendered_values_are_up_to_date_with_platform_yaml():
    assert RENDERED_VALUES_PATH.read_text() == rendered_values_text(platform_layers()), \
        "run: .venv/bin/python -m grader.hub.kubernetes values"


def _profiles(values) -> dict[str, dict]:
    return {entry["slug"]: entry for entry in values["singleuser"]["profileList"]}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_profiles_gpu_ones_get_a_whole_gpu_on_the_gpu_pool(env):
    values = merged_values(env)
    settings = settings_from_config(kubernetes_config())
    profiles = _profiles(values)
    assert list(profiles) == [p.slug for p in settings.profiles]
    assert [entry.get("default", False) for entry in profiles.values()].count(True) == 1
    gpu_slugs = {p.slug for p in settings.profiles if p.gpus}
    assert gpu_slugs and gpu_slugs != set(profiles), "expected CPU and GPU profiles"
    for slug, entry in profiles.items():
        override = entry["kubespawner_override"]
        if slug in gpu_slugs:
            assert override["extra_resource_limits"] == {GPU_RESOURCE: "1"}
            assert override["node_selector"] and override["tolerations"]
            assert any(t["key"] == GPU_RESOURCE and t["effect"] == "NoSchedule" for t in override["tolerations"])
            assert override["image"].endswith(":" + image_tag("gpu"))
        else:
            assert not {"extra_resource_limits", "node_selector", "tolerations", "image"} & set(override)
        assert override["cpu_guarantee"] < override["cpu_limit"]
    assert values["singleuser"]["image"]["tag"] == image_tag("cpu")


def test_profile_overrides_build_valid_pods():
    # KubeSpawner's own pod builder, fed each profile's overrides: every key is a KubeSpawner
    # trait, and the pod it makes passes the Kubernetes API schema.
    traits = set(KubeSpawner.class_trait_names())
    for entry in merged_values("production")["singleuser"]["profileList"]:
        override = entry["kubespawner_override"]
        assert set(override) <= traits, set(override) - traits
        # As KubeSpawner reads them: "4G" through JupyterHub's byte-size trait.
        spawner_traits = KubeSpawner.class_traits()
        limits = {key: spawner_traits[key].validate(None, override[key])
                  for key in ("cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee")}
        pod = make_pod(name=f"jupyter-student-{entry['slug']}", cmd=["jupyterhub-singleuser"], port=8888,
                       image=override.get("image", "ghcr.io/aicourse/singleuser-cpu:tag"),
                       node_selector=override.get("node_selector"), tolerations=override.get("tolerations"),
                       extra_resource_limits=override.get("extra_resource_limits"), **limits)
        manifest = {"apiVersion": "v1", "kind": "Pod", **pod.to_dict()}
        kubernetes_validate.validate(_camel(manifest), KUBERNETES_VERSION, strict=True)
        resources = pod.spec.containers[0].resources
        assert (resources.limits.get(GPU_RESOURCE) == "1") == bool(override.get("extra_resource_limits"))


def _camel(node):
    """The Kubernetes client's snake_case model dict as API JSON (camelCase, no nulls)."""
    if isinstance(node, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key): _camel(value)
                for key, value in node.items() if value is not None}
    if isinstance(node, list):
        return [_camel(item) for item in node]
    return node


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_services_seats_exchange_and_a_formgrader_per_course(env):
    values = merged_values(env)
    settings = settings_from_config(kubernetes_config())
    services = values["hub"]["services"]
    assert set(services) == {"seats", EXCHANGE_SERVICE, *(course.course_id for course in settings.courses)}
    ports = []
    for name, service in services.items():
        host, port = re.fullmatch(r"http://([^:]+):(\d+)", service["url"]).groups()
        assert host == HUB_SERVICE_HOST
        ports.append(int(port))
        command = service["command"]
        assert command[0] == "python3" and "--allow-root" not in command
        # Each listens on every address of the hub pod: its URL's host is the Service's.
        assert command[-1] in ("--ServerApp.ip=0.0.0.0", "--ip=0.0.0.0"), (name, command)
        assert not any("127.0.0.1" in arg for arg in command), (name, command)
    for course in settings.courses:
        command = services[course.course_id]["command"]
        assert "--ServerApp.ip=0.0.0.0" in command
        assert f"--ServerApp.root_dir=/srv/aicourse/courses/{course.course_id}" in command
    # The proxy, in its own pod, reaches each service through the hub's Service.
    assert sorted(p["port"] for p in values["hub"]["service"]["extraPorts"]) == sorted(ports)
    assert sorted(values["hub"]["networkPolicy"]["allowedIngressPorts"]) == sorted(ports)
    roles = values["hub"]["loadRoles"]
    assert {f"grader-{c.course_id}" for c in settings.courses} <= set(roles)
    for role in roles.values():
        assert set(role.get("services", [])) <= set(services)


def test_the_cluster_uses_the_http_exchange_in_the_hub_pod():
    settings = settings_from_config(kubernetes_config())
    assert settings.exchange.backend == "http", "no filesystem is shared between pods"
    values = merged_values("production")
    service = values["hub"]["services"][EXCHANGE_SERVICE]
    assert service["url"] == f"http://{HUB_SERVICE_HOST}:{settings.exchange.service_port}"
    assert "--root=/srv/aicourse/exchange-service" in service["command"]  # on the platform volume
    roles = values["hub"]["loadRoles"]
    # The service reads callers' groups; course members and each formgrader may call it.
    assert roles[EXCHANGE_SERVICE] == {k: v for k, v in exchange_roles(settings)[0].items() if k != "name"}
    client = roles[f"{EXCHANGE_SERVICE}-client"]
    assert client["scopes"] == [f"access:services!service={EXCHANGE_SERVICE}"]
    assert set(client["groups"]) == {"formgrade-ai101", "nbgrader-ai101"} and client["services"] == ["ai101"]


def test_users_pods_reach_the_exchange_through_the_hub_service():
    values = merged_values("production")
    port = settings_from_config(kubernetes_config()).exchange.service_port
    url = values["singleuser"]["extraEnv"][EXCHANGE_URL_ENV]
    assert url == f"http://{HUB_SERVICE_HOST}:{port}/services/{EXCHANGE_SERVICE}/"
    assert EXCHANGE_URL_ENV == URL_ENV, "the variable the exchange plugin reads by default"
    assert {"name": f"svc-{port}", "port": port, "targetPort": port} in values["hub"]["service"]["extraPorts"]
    assert port in values["hub"]["networkPolicy"]["allowedIngressPorts"]
    # The chart lets users' pods reach the hub pod on 8081 only: one more egress rule, to the hub
    # pod (the chart's labels on it) on the exchange's port, valid as Kubernetes has it.
    (rule,) = values["singleuser"]["networkPolicy"]["egress"]
    assert {"port": port, "protocol": "TCP"} in rule["ports"]
    assert rule["to"] == [{"podSelector": {"matchLabels": {"app": "jupyterhub", "component": "hub"}}}]
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "singleuser"},
              "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [rule]}}
    kubernetes_validate.validate(policy, KUBERNETES_VERSION, strict=True)


def _seats_layer(tmp_path: Path, enabled: bool) -> Path:
    layer = yaml.safe_load((HELM_DIR / "platform.kubernetes.yaml").read_text())
    layer["seats"] = {"enabled": enabled}
    path = tmp_path / "platform.kubernetes.yaml"
    path.write_text(yaml.safe_dump(layer))
    return path


def test_users_pods_report_the_lessons_they_run_to_the_seats_service():
    # "Lessons run" on the cluster: each learner's server reports to the seats service in the hub
    # pod, at the address in its environment, through the hub's Service, on a port its network
    # policy lets it reach (one egress rule with the exchange's port: Helm replaces lists).
    values = merged_values("production")
    settings = settings_from_config(kubernetes_config())
    port = settings.seats.service_port
    url = values["singleuser"]["extraEnv"][LESSONS_URL_ENV]
    assert url == f"http://{HUB_SERVICE_HOST}:{port}/services/seats/api/lesson-runs"
    assert values["hub"]["services"]["seats"]["url"] == f"http://{HUB_SERVICE_HOST}:{port}"
    assert {"name": f"svc-{port}", "port": port, "targetPort": port} in values["hub"]["service"]["extraPorts"]
    assert port in values["hub"]["networkPolicy"]["allowedIngressPorts"]
    (rule,) = values["singleuser"]["networkPolicy"]["egress"]
    assert rule["ports"] == [{"port": p, "protocol": "TCP"} for p in sorted({settings.exchange.service_port, port})]
    # The server's token may call the service, and learners hold the role that lets them.
    assert "access:services!service=seats" in server_token_scopes(settings)
    assert values["hub"]["loadRoles"]["seats-learner"]["groups"] == ["nbgrader-ai101"]


def test_without_seats_users_pods_report_nothing_and_reach_only_the_exchange(tmp_path):
    values = render_values(platform_layers(kubernetes_path=_seats_layer(tmp_path, enabled=False)))
    settings = settings_from_config(kubernetes_config(kubernetes_path=tmp_path / "platform.kubernetes.yaml"))
    assert LESSONS_URL_ENV not in values["singleuser"]["extraEnv"]
    (rule,) = values["singleuser"]["networkPolicy"]["egress"]
    assert rule["ports"] == [{"port": settings.exchange.service_port, "protocol": "TCP"}]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_users_servers_cull_their_idle_kernels_as_on_one_machine(env):
    culling = settings_from_config(kubernetes_config()).kernel_culler
    kube_spawner = merged_values(env)["hub"]["config"]["KubeSpawner"]
    assert kube_spawner["args"] == kernel_culling_args(culling.timeout, culling.cull_every, culling.cull_connected)
    assert "--MappingKernelManager.cull_idle_timeout=1800" in kube_spawner["args"]
    # Maps merge: the base's KubeSpawner settings stay beside the rendered ones.
    assert (kube_spawner["start_timeout"], kube_spawner["http_timeout"]) == (600, 120)


def test_no_kernel_culling_renders_no_server_options(tmp_path):
    platform = yaml.safe_load((HELM_DIR.parent / "platform.yaml").read_text())
    platform["kernel_culler"] = {"timeout": 0}
    (tmp_path / "platform.yaml").write_text(yaml.safe_dump(platform))
    assert "config" not in render_values(platform_layers(admin_path=tmp_path / "platform.yaml"))["hub"]


def _branded(tmp_path: Path, logo: bytes, name: str = "logo.png") -> Path:
    platform = yaml.safe_load((HELM_DIR.parent / "platform.yaml").read_text())
    platform["branding"] = {"title": "Deep Learning at Example U", "logo": f"brand/{name}"}
    (tmp_path / "brand").mkdir(exist_ok=True)
    (tmp_path / "brand" / name).write_bytes(logo)
    (tmp_path / "platform.yaml").write_text(yaml.safe_dump(platform))
    return tmp_path / "platform.yaml"


def test_the_branding_logo_is_carried_into_the_hub_pod(tmp_path, chart):
    # The logo named in platform.yaml (relative to it) is on the machine that renders the values;
    # the values carry the file (hub.extraFiles, binaryData) and the mounted settings name its copy.
    logo = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    values = render_values(platform_layers(admin_path=_branded(tmp_path, logo)))
    files = values["hub"]["extraFiles"]
    assert base64.b64decode(files["branding-logo"]["binaryData"]) == logo
    assert files["branding-logo"]["mountPath"] == "/usr/local/etc/aicourse/logo.png"
    assert files["platform-yaml"]["data"]["branding"] == {"title": "Deep Learning at Example U",
                                                          "logo": "/usr/local/etc/aicourse/logo.png"}
    assert str(tmp_path) not in yaml.safe_dump(values)
    assert schema_errors(chart, helm_merge(merged_values("staging"), values)) == []
    # Without a logo, only the settings file is mounted.
    assert list(render_values(platform_layers())["hub"]["extraFiles"]) == ["platform-yaml"]


def test_a_missing_or_too_large_logo_is_refused(tmp_path):
    path = _branded(tmp_path, b"\0" * (LOGO_MAX_BYTES + 1))
    with pytest.raises(ConfigError, match="branding.logo: .* at most"):
        render_values(platform_layers(admin_path=path))
    (tmp_path / "brand" / "logo.png").unlink()
    with pytest.raises(ConfigError, match="branding.logo: .* is not a file"):
        render_values(platform_layers(admin_path=path))


def test_the_hub_pod_shows_the_title_and_the_mounted_logo(tmp_path):
    logo = tmp_path / "mounted-logo.svg"
    logo.write_text("<svg/>")
    platform = yaml.safe_load((HELM_DIR.parent / "platform.yaml").read_text())
    platform["branding"] = {"title": "Deep Learning at Example U", "logo": str(logo)}
    c = Config()
    c.JupyterHub.template_vars = {"chart": "kept"}
    apply_kubernetes_settings(c, settings_from_config(merge_layers(kubernetes_config(), {
        "branding": platform["branding"], "data_dir": str(tmp_path / "data")})))
    assert c.JupyterHub.logo_file == str(logo)
    assert {"chart": "kept", "aicourse_title": "Deep Learning at Example U",
            "aicourse_logo": True}.items() <= c.JupyterHub.template_vars.items()
    logo.unlink()
    with pytest.raises(ConfigError, match="render the values again"):
        apply_kubernetes_settings(Config(), settings_from_config(merge_layers(kubernetes_config(), {
            "branding": platform["branding"], "data_dir": str(tmp_path / "data")})))


def test_a_service_the_hub_pod_cannot_bind_is_refused():
    service = {"name": "odd", "url": "http://127.0.0.1:8099", "command": ["python", "odd_server.py"]}
    with pytest.raises(ConfigError, match="service odd: no way known to make"):
        _in_hub_pod(service)


def test_the_seats_service_listens_on_every_address_of_the_pod(tmp_path):
    # The seats service as the rendered values run it, started for real: its URL's host is the
    # hub's Service ("hub"), which no process can bind; it must listen on every address instead.
    import socket
    import subprocess
    import sys
    import time

    import psutil

    from tests.support.hubfixture import free_port

    command = merged_values("staging")["hub"]["services"]["seats"]["command"]
    port = free_port()
    env = {**os.environ, "JUPYTERHUB_SERVICE_URL": f"http://{HUB_SERVICE_HOST}:{port}",
           "JUPYTERHUB_SERVICE_PREFIX": "/services/seats/", "GRADER_SEATS_DB": f"sqlite:///{tmp_path / 'seats.sqlite'}"}
    env.pop("JUPYTERHUB_API_TOKEN", None)  # no hub here: no sweeps
    args = [arg for arg in command[1:] if not arg.startswith(("--homes-dir=", "--course="))]
    service = subprocess.Popen([sys.executable, *args], env=env, cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        listening = []
        while time.monotonic() < deadline and service.poll() is None and not listening:
            time.sleep(0.2)
            listening = [c.laddr for c in psutil.Process(service.pid).net_connections(kind="tcp")
                         if c.status == psutil.CONN_LISTEN]
        assert service.poll() is None, service.stdout.read().decode()[-2000:]
        assert [(address.ip, address.port) for address in listening] == [("0.0.0.0", port)]
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass
        # Where users' servers report the lessons run (singleuser.extraEnv): a route of this
        # service, answering a caller without a token with a refusal, not a 404.
        from urllib.parse import urlsplit

        import requests

        path = urlsplit(merged_values("staging")["singleuser"]["extraEnv"][LESSONS_URL_ENV]).path
        answer = requests.post(f"http://127.0.0.1:{port}{path}", json={"lesson": "01_backprop/01_forward_pass.ipynb"}, timeout=10)
        assert answer.status_code in (401, 403), (path, answer.status_code, answer.text[:300])
    finally:
        if service.poll() is None:
            os.killpg(service.pid, 15)
        service.wait(timeout=30)
        service.stdout.close()


def test_oidc_groups_get_the_instructor_and_cohort_admin_roles(tmp_path):
    # As on one machine (grader.hub.auth.oidc.roles_with_identity_groups): the roles given by name are
    # also given to the identity provider's groups mapped to them.
    platform = yaml.safe_load((HELM_DIR.parent / "platform.yaml").read_text())
    platform["auth"] = {"type": "oidc", "oidc": {
        "issuer": "https://login.example.org/realms/school", "client_id": "jupyterhub",
        "group_roles": {"ml-staff": {"courses": {"ai101": "instructor"}}, "leads": "cohort-admin",
                        "ml-students": {"courses": {"ai101": "student"}}}}}
    (tmp_path / "platform.yaml").write_text(yaml.safe_dump(platform))
    layers = platform_layers(admin_path=tmp_path / "platform.yaml")
    values = render_values(layers)
    roles = values["hub"]["loadRoles"]
    assert roles["instructor-ai101"]["groups"] == ["ml-staff"] and roles["instructor-ai101"]["users"] == ["instructor"]
    assert roles["cohort-admin"]["groups"] == ["leads"]
    assert roles["student"]["groups"] == ["nbgrader-ai101"]
    # The client secret is never in the values; the hub pod reads it from its secrets layer.
    assert "client_secret" not in yaml.safe_dump(values)
    assert "client_secret" not in values["hub"]["extraFiles"]["platform-yaml"]["data"]["auth"]["oidc"]
    # Local accounts: the roles stay as they were.
    local = render_values(platform_layers())["hub"]["loadRoles"]
    assert "groups" not in local["instructor-ai101"] and local["cohort-admin"].get("groups") is None


def test_a_second_course_gets_its_own_formgrader(tmp_path):
    platform = yaml.safe_load((HELM_DIR.parent / "platform.yaml").read_text())
    platform["courses"]["ml201"] = {"formgrader_port": 8012, "instructors": ["ivy"], "students": ["sam"]}
    (tmp_path / "platform.yaml").write_text(yaml.safe_dump(platform))
    values = render_values(platform_layers(admin_path=tmp_path / "platform.yaml"))
    assert values["hub"]["services"]["ml201"]["url"] == "http://hub:8012"
    assert 8012 in values["hub"]["networkPolicy"]["allowedIngressPorts"]
    assert values["hub"]["loadRoles"]["instructor-ml201"]["users"] == ["ivy"]
    assert values["hub"]["extraFiles"]["platform-yaml"]["data"]["courses"]["ml201"]["formgrader_port"] == 8012


def test_a_kubernetes_layer_with_an_unknown_key_is_refused(tmp_path):
    layer = tmp_path / "platform.kubernetes.yaml"
    layer.write_text("kubernetes:\n  gpu_node_selectr: {a: b}\n")
    with pytest.raises(ConfigError, match=r"platform.kubernetes.yaml: kubernetes.gpu_node_selectr: unknown setting"):
        kubernetes_config(kubernetes_path=layer)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_culling_is_the_platforms(env):
    culling = kubernetes_config()["idle_culler"]
    cull = merged_values(env)["cull"]
    assert cull["enabled"] is True
    assert (cull["timeout"], cull["every"], cull["maxAge"]) == (culling["timeout"], culling["cull_every"], culling["max_age"])
    # The chart runs the culler: the platform must not start a second one.
    assert "idle-culler" not in merged_values(env)["hub"]["services"]


def test_production_hub_database_is_postgresql_without_a_password_in_the_clear():
    production = merged_values("production")
    assert production["hub"]["db"]["type"] == "postgres"
    assert production["hub"]["db"]["url"].startswith("postgresql+psycopg://")
    overlay = load_values_file("production.values.yaml")
    assert "password" not in overlay["hub"]["db"] and ":" not in overlay["hub"]["db"]["url"].split("@")[0].split("//")[1]
    assert "password" in load_values_file("secret.values.example.yaml")["hub"]["db"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_python_in_yaml_and_images_pinned(env):
    values = merged_values(env)
    assert not values["hub"].get("extraConfig")
    images = [f"{values['hub']['image']['name']}:{values['hub']['image']['tag']}",
              f"{values['singleuser']['image']['name']}:{values['singleuser']['image']['tag']}"]
    images += [p["kubespawner_override"]["image"] for p in values["singleuser"]["profileList"]
               if "image" in p["kubespawner_override"]]
    for image in images:
        tag = image.rsplit(":", 1)[1]
        assert tag and tag != "latest", image


# --- secrets ----------------------------------------------------------------------------------------

def is_sops_encrypted(text: str) -> bool:
    """A sops-encrypted YAML file: its ``sops`` metadata, and every leaf value an ``ENC[...]``."""
    data = yaml.safe_load(text) or {}
    if not isinstance(data.get("sops"), dict):
        return False

    def leaves(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from leaves(value)
        elif isinstance(node, list):
            for value in node:
                yield from leaves(value)
        else:
            yield node

    return all(isinstance(v, str) and v.startswith("ENC[") for k, v in data.items() if k != "sops" for v in leaves(v))


def test_sops_check_tells_plaintext_from_encrypted():
    assert not is_sops_encrypted(SECRET_EXAMPLE.read_text())
    assert is_sops_encrypted("hub:\n  cookieSecret: ENC[AES256_GCM,data:abc,iv:x,tag:y,type:str]\n"
                             "sops:\n  version: 3.9.0\n  mac: ENC[AES256_GCM,data:m,iv:x,tag:y,type:str]\n")
    assert not is_sops_encrypted("hub:\n  cookieSecret: plain\nsops:\n  version: 3.9.0\n")


def test_every_secret_values_file_is_encrypted_and_the_example_is_not_one():
    assert not SECRET_EXAMPLE.name.endswith(".secret.values.yaml")
    for path in HELM_DIR.glob("*.secret.values.yaml"):
        assert is_sops_encrypted(path.read_text()), f"{path} is not sops-encrypted"
    rules = yaml.safe_load((HELM_DIR / ".sops.yaml").read_text())["creation_rules"]
    for env in ENVIRONMENTS:
        assert any(re.search(rule["path_regex"], f"hub_config/helm/{env}.secret.values.yaml") for rule in rules)


# --- in the hub pod -----------------------------------------------------------------------------------

class _Group:
    def __init__(self, name):
        self.name = name


class _User:
    """What KubeSpawner and the hooks read of JupyterHub's User (no hub runs in these tests)."""

    def __init__(self, name, *groups, admin=False):
        self.name, self.id, self.url, self.admin = name, 7, f"/user/{name}/", admin
        self.groups = [_Group(group) for group in groups]


@pytest.fixture
def kubeconfig(tmp_path_factory, monkeypatch):
    """A kubeconfig naming an API server nothing listens on: KubeSpawner loads one when it is made,
    and no cluster can run here. Nothing below calls the API (no pod is made)."""
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "none", "user": {"token": "unused"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
    }))
    # Where the client looks by default ($KUBECONFIG is read once, when it is imported).
    monkeypatch.setattr(kubernetes_asyncio.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def _kubespawner(c, user, **user_options):
    """A real KubeSpawner on the config (made inside an event loop, as in the hub); _mock stands in
    for the hub, which does not run in these tests. Its profile list, form, options and hooks are
    KubeSpawner's own."""
    spawner = KubeSpawner(_mock=True, config=c, user=user)
    spawner.user_options = user_options
    return spawner


def _hub_pod_config(tmp_path):
    """The hub pod's config: what the chart's jupyterhub_config.py leaves in `c`, then ours."""
    c = Config()
    c.KubeSpawner.profile_list = merged_values("production")["singleuser"]["profileList"]
    settings = settings_from_config(merge_layers(kubernetes_config(), {"data_dir": str(tmp_path)}))
    apply_kubernetes_settings(c, settings)
    return c, settings


@pytest.fixture
def seats(tmp_path, kubeconfig):
    """The hub pod's config with seats on a real SQLite seats database: `learner` holds a seat in
    an open cohort that includes only the CPU profile, `gone` a revoked seat."""
    c, settings = _hub_pod_config(tmp_path)
    sessions = seats_policy(settings).sessions
    today = datetime.now(timezone.utc).date()
    with sessions() as session:
        org = create_organisation(session, name="Acme", contact_email="seats@acme.example")
        cohort = create_cohort(session, organisation_id=org.id, name="spring", course_id="ai101",
                               starts_on=today - timedelta(days=1), ends_on=today + timedelta(days=30),
                               seat_limit=5, profiles=["cpu"])
        assign_seat(session, cohort_id=cohort.id, username="learner")
        revoke_seat(session, seat_id=assign_seat(session, cohort_id=cohort.id, username="gone").id)
    yield c, sessions, cohort.id
    close_seats_db(sessions)


def _usage(sessions, username):
    with sessions() as session:
        return [(r.profile, r.gpus, r.cohort_id, r.stopped_at is not None) for r in session.scalars(
            select(UsageRecord).where(UsageRecord.username == username).order_by(UsageRecord.id))]


def test_hub_pod_config_limits_the_charts_profiles_by_group(tmp_path, kubeconfig):
    c, _ = _hub_pod_config(tmp_path)
    access = c.KubeSpawner.profile_list
    assert isinstance(access, ProfileAccess)

    async def slugs(*groups):
        # An instructor needs no seat, so only the groups decide here.
        spawner = _kubespawner(c, _User("instructor", "formgrade-ai101", *groups))
        return [(p["slug"], p["default"]) for p in await spawner.profile_list(spawner)]

    assert asyncio.run(slugs()) == [("cpu", True)]
    assert asyncio.run(slugs("gpu-users")) == [("cpu", True), ("gpu", False)]
    assert c.JupyterHub.authenticator_class == "grader.hub.auth.local.PlatformAuthenticator"
    assert set(c.JupyterHub.load_groups) >= {"formgrade-ai101", "nbgrader-ai101", "gpu-users"}
    assert (tmp_path / "courses" / "ai101").is_dir()
    # The chart's own traits are left alone.
    assert "spawner_class" not in c.JupyterHub and "services" not in c.JupyterHub


def test_applying_the_hub_pod_config_twice_gives_the_same_profiles(tmp_path):
    c, settings = _hub_pod_config(tmp_path)
    apply_kubernetes_settings(c, settings)
    assert [p["slug"] for p in c.KubeSpawner.profile_list.chart_profiles] == ["cpu", "gpu"]


def test_a_learner_gets_only_the_profiles_of_their_cohort(seats):
    c, sessions, cohort_id = seats
    # In gpu-users too: the cohort's profiles narrow what the groups allow.
    learner = _User("learner", "nbgrader-ai101", "gpu-users")

    async def scenario():
        spawner = _kubespawner(c, learner)
        assert [p["slug"] for p in await spawner.profile_list(spawner)] == ["cpu"]
        form = await spawner.get_options_form()
        assert "CPU: 2 cores" in form and "GPU: 1 GPU" not in form
        # KubeSpawner itself refuses a profile the list leaves out (e.g. asked for through the API) ...
        with pytest.raises(ValueError, match="No such profile: gpu"):
            await _kubespawner(c, learner, profile="gpu").load_user_options()
        # ... and the pre-spawn hook refuses it first, before anything is metered.
        with pytest.raises(SpawnException) as refused:
            await _kubespawner(c, learner, profile="gpu").run_pre_spawn_hook()
        assert (refused.value.status_code, refused.value.reason) == (400, "profile") and "'gpu'" in refused.value.message
        assert _usage(sessions, "learner") == []
        # A start with the CPU profile is metered to the cohort, and its stop closes the record.
        spawner = _kubespawner(c, learner, profile="cpu")
        await spawner.run_pre_spawn_hook()
        await spawner.load_user_options()
        assert spawner.cpu_limit == 2 and spawner.extra_resource_limits == {}
        assert _usage(sessions, "learner") == [("cpu", 0, cohort_id, False)]
        await spawner.run_post_stop_hook()
        assert _usage(sessions, "learner") == [("cpu", 0, cohort_id, True)]

    asyncio.run(scenario())


def test_a_revoked_learner_cannot_start_a_server(seats):
    c, sessions, _ = seats

    async def scenario():
        spawner = _kubespawner(c, _User("gone", "nbgrader-ai101"), profile="cpu")
        with pytest.raises(SpawnException) as refused:
            await spawner.run_pre_spawn_hook()
        # The one-machine spawn form's refusal: 403, reason "seat", shown as it is.
        assert (refused.value.status_code, refused.value.reason) == (403, "seat")
        assert refused.value.message.startswith(
            "You cannot use this hub now: your seat in cohort 'spring' was revoked")
        with pytest.raises(SpawnException):
            await spawner.get_options_form()

    asyncio.run(scenario())
    assert _usage(sessions, "gone") == []


def test_staff_need_no_seat_and_get_every_profile_their_groups_allow(seats):
    c, sessions, _ = seats

    async def scenario():
        spawner = _kubespawner(c, _User("instructor", "formgrade-ai101", "gpu-users"), profile="gpu")
        assert [p["slug"] for p in await spawner.profile_list(spawner)] == ["cpu", "gpu"]
        await spawner.run_pre_spawn_hook()
        await spawner.load_user_options()
        assert spawner.extra_resource_limits == {GPU_RESOURCE: "1"}

    asyncio.run(scenario())
    # Metered too, billed to no cohort.
    assert _usage(sessions, "instructor") == [("gpu", 1, None, False)]


def test_users_server_tokens_may_call_the_exchange(tmp_path):
    c, settings = _hub_pod_config(tmp_path)
    scopes = c.KubeSpawner.server_token_scopes
    assert scopes == server_token_scopes(settings)
    assert "access:services!service=nbgrader-exchange" in scopes and "read:users:groups!user" in scopes


def test_stale_chart_profiles_stop_the_hub():
    chart = [{"slug": "cpu", "display_name": "CPU"}]
    with pytest.raises(ConfigError, match="render the values again"):
        ProfileAccess(chart, settings_from_config(kubernetes_config()).profiles)


# --- the grading workers ------------------------------------------------------------------------------

def _manifests(name):
    return list(yaml.safe_load_all((HELM_DIR / name).read_text()))


def test_grading_worker_pod_is_valid_and_locked_down():
    pod, policy = _manifests("grading-worker-pod.yaml")
    for manifest in (pod, policy):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"] and not security.get("privileged")
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert container["image"].endswith(":" + image_tag("cpu"))
    assert "--nthreads" in container["args"] and container["args"][container["args"].index("--nthreads") + 1] == "1"
    # Egress is denied except to the scheduler and DNS, and the policy selects these pods.
    assert "Egress" in policy["spec"]["policyTypes"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    ports = sorted(port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"])
    assert ports == [53, 53, 8786]
    assert all(rule.get("to") for rule in policy["spec"]["egress"]), "an egress rule without `to` allows everywhere"


def test_a_pod_spec_mistake_is_caught_by_the_kubernetes_schema():
    pod, _ = _manifests("grading-worker-pod.yaml")
    pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_platform_volume_claim_is_valid():
    (claim,) = _manifests("aicourse-data-pvc.yaml")
    kubernetes_validate.validate(claim, KUBERNETES_VERSION, strict=True)
    values = merged_values("production")
    assert {"name": "aicourse-data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}} in values["hub"]["extraVolumes"]


# --- deploy.sh ----------------------------------------------------------------------------------------

def _deploy(tmp_path, env, *, secrets_text):
    """Run a copy of deploy.sh with stand-ins for helm and sops, which cannot run here (no cluster,
    no binaries): they record their arguments, and "sops --decrypt" prints the file it is given."""
    import shutil
    import subprocess
    import sys

    helm_dir = tmp_path / "helm"
    shutil.copytree(HELM_DIR, helm_dir, ignore=shutil.ignore_patterns("*.secret.values.yaml", "rendered"))
    (helm_dir / f"{env}.secret.values.yaml").write_text(secrets_text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "helm").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/helm-args\n')
    (bin_dir / "sops").write_text('#!/bin/sh\n[ "$1" = --decrypt ] && sed "/^sops:/,\\$d" "$2"\n')
    for tool in ("helm", "sops"):
        (bin_dir / tool).chmod(0o755)
    env_vars = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(helm_dir / "deploy.sh"), env], capture_output=True, text=True,
                            env=env_vars, cwd=HELM_DIR.parent.parent, timeout=120)
    return result, helm_dir


ENCRYPTED = "hub:\n  cookieSecret: ENC[AES256_GCM,data:abc,iv:x,tag:y,type:str]\nsops:\n  version: 3.9.0\n"


def test_deploy_passes_the_files_to_helm_in_order(tmp_path):
    result, helm_dir = _deploy(tmp_path, "production", secrets_text=ENCRYPTED)
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "helm-args").read_text().split()
    files = [args[i + 1] for i, arg in enumerate(args) if arg == "--values"]
    assert [Path(f).name for f in files[:3]] == deploy_order("production")[:3]
    assert files[3] != str(helm_dir / "production.secret.values.yaml"), "helm gets the decrypted copy"
    assert not Path(files[3]).exists(), "the decrypted copy is removed"
    assert args[:3] == ["upgrade", "--install", "aicourse"]
    assert args[args.index("--version") + 1] == chart_version() == "4.4.0"


def test_deploy_refuses_a_plaintext_secrets_file(tmp_path):
    result, _ = _deploy(tmp_path, "staging", secrets_text="hub:\n  cookieSecret: abc\n")
    assert result.returncode == 2
    assert "staging.secret.values.yaml is not sops-encrypted" in result.stderr
    assert not (tmp_path / "helm-args").exists()
