"""The platform on Kubernetes: Zero-to-JupyterHub values rendered from the platform's own settings.

One set of layered settings drives both deployments. On one machine :mod:`grader.hub.config`
applies all of them. Under the Zero-to-JupyterHub chart, the chart owns the spawner (KubeSpawner),
proxy, hub database and idle culler, so:

- :func:`render_values` turns the settings into the chart's values: ``singleuser.profileList`` from
  ``profiles``, ``hub.services`` (each course's formgrader, the seats service, the HTTP exchange)
  and ``hub.loadRoles`` from the courses and roles (IdP groups included under OIDC), ``cull`` from
  ``idle_culler``, the exchange's address for users' pods, and the settings themselves as a file
  mounted into the hub pod (the branding logo beside it), the seats service's lesson-report
  address and kernel culling for users' servers. ``python -m grader.hub.kubernetes values`` writes them to
  ``hub_config/helm/platform.values.yaml`` (committed; a test fails when it is stale).
- :func:`apply_kubernetes_settings` runs in the hub pod (from the chart's ``jupyterhub_config.d``,
  see ``hub_config/images/hub/``) and sets what the chart cannot: the authenticator, course
  directories and groups, admins, seats (checked at login and at each start, starts and stops
  metered), which of the chart's profiles each user may pick (:mod:`grader.hub.kubernetes.profiles`),
  and what users' server tokens may do.
- In a user's pod, nbgrader reads ``hub_config/images/singleuser/nbgrader_config.py``, which takes
  the exchange's address from the pod's environment (:mod:`grader.hub.kubernetes.pod_nbgrader`).

The settings layers are the same as on one machine, plus ``hub_config/helm/platform.kubernetes.yaml``
on top of ``platform.yaml`` (the cluster's images, GPU node pool, requests).
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any, Mapping, Sequence

import yaml

from grader.exchange.service import SERVICE_NAME as EXCHANGE_SERVICE
from grader.hub.auth.configure import update_auth
from grader.hub.auth.oidc import roles_with_identity_groups
from grader.hub.branding import update_branding
from grader.hub.kubernetes.pod_nbgrader import EXCHANGE_URL_ENV
from grader.hub.kubernetes.profiles import ProfileAccess
from grader.hub.layers import ConfigError, merge_layers, read_layer
from grader.hub.roles import platform_roles, server_token_scopes
from grader.hub.services.exchange import exchange_roles, exchange_service, uses_http_exchange
from grader.hub.services.formgrader import course_service, update_courses
from grader.hub.services.seats import lessons_url, seats_policy, seats_roles, seats_services, update_seats
from grader.hub.settings import DEFAULT_CONFIG_PATH, HubSettings, Profile, layered_config, settings_from_config
from grader.hub.spawn.servers import STAFF_JUPYTER_CONFIG
from grader.hub.spawn.singleuser import kernel_culling_args
from grader.resources import HUB_CONFIG_DIR, PACKAGE_DIR, REPO_ROOT
from grader.seats.lesson_reports import URL_ENV as LESSONS_URL_ENV

HELM_DIR = HUB_CONFIG_DIR / "helm"
KUBERNETES_LAYER_PATH = HELM_DIR / "platform.kubernetes.yaml"
RENDERED_VALUES_PATH = HELM_DIR / "platform.values.yaml"
CONSTRAINTS_PATH = REPO_ROOT / "requirements" / "constraints.txt"

# Where the hub image and the chart's values put things inside the hub pod.
HUB_DATA_DIR = "/srv/aicourse"  # a PersistentVolumeClaim (hub.extraVolumes)
HUB_CONFIG_FILE = "/usr/local/etc/aicourse/platform.yaml"  # hub.extraFiles, rendered below
# branding.logo, carried in hub.extraFiles too (binaryData): the file named in platform.yaml is on
# the machine that renders the values, not in the hub pod. The chart keeps extraFiles in one Secret,
# and Kubernetes caps a Secret at 1 MiB (base64 makes a file a third larger).
HUB_LOGO_DIR = PurePosixPath("/usr/local/etc/aicourse")
LOGO_MAX_BYTES = 256 * 2**10
# The hub image installs the package from a wheel (pip install '/opt/aicourse[hub,k8s]'), so its
# package data is in the image Python's site-packages: the Python of its base, the chart's
# quay.io/jupyterhub/k8s-hub (3.12 in 4.4.0). The Dockerfile's build fails if the package lands
# elsewhere (tests/hub/kubernetes/test_images.py checks the Dockerfile tests this very path).
HUB_IMAGE_PYTHON = "3.12"
HUB_IMAGE_PACKAGE_DIR = PurePosixPath(f"/usr/local/lib/python{HUB_IMAGE_PYTHON}/site-packages/grader")
# Where the image keeps the repository's content (content_dir: assignments/source/ for the formgraders).
HUB_CONTENT_DIR = "/opt/aicourse"
HUB_PYTHON = "python3"
# The chart's Service in front of the hub pod; the proxy reaches the hub's managed services there.
HUB_SERVICE_HOST = "hub"
# The hub pod's labels (the chart's): users' pods may reach it on the exchange's port.
HUB_POD_LABELS = {"app": "jupyterhub", "component": "hub"}
# Rendering needs no secrets; an OIDC client secret stands in for the one the hub pod reads from
# its secrets layer (<data_dir>/secrets.yaml on the platform volume).
RENDER_SECRETS = {"auth": {"oidc": {"client_secret": "read-in-the-hub-pod"}}}
GPU_RESOURCE = "nvidia.com/gpu"

# Defaults of the `kubernetes:` settings block (grader/hub/data/platform.schema.json).
KUBERNETES_DEFAULTS: dict[str, Any] = {
    "images": {"cpu": "ghcr.io/aicourse/singleuser-cpu", "gpu": "ghcr.io/aicourse/singleuser-gpu"},
    # The label NVIDIA's GPU feature discovery (GPU operator) puts on GPU nodes, and the taint
    # managed GPU pools carry (GKE adds it itself), so CPU pods never land on a GPU node.
    "gpu_node_selector": {"nvidia.com/gpu.present": "true"},
    "gpu_tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    # Requests are what nodes are packed by; most servers idle most of the time (see
    # docs/deploy-kubernetes.md, "Sizing"), so CPU is overcommitted 4x, memory 2x.
    "cpu_guarantee_ratio": 0.25,
    "mem_guarantee_ratio": 0.5,
}

_BYTE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


# --- settings -------------------------------------------------------------------------------------

def platform_layers(*, admin_path: Path = DEFAULT_CONFIG_PATH,
                    kubernetes_path: Path = KUBERNETES_LAYER_PATH) -> dict[str, Any]:
    """The cluster's settings files merged: ``platform.yaml``, then the Kubernetes layer (both validated)."""
    admin = read_layer(Path(admin_path), required=True)
    return merge_layers(admin, read_layer(Path(kubernetes_path), required=False))


def full_config(layers: Mapping[str, Any]) -> dict[str, Any]:
    """``layers`` over the defaults in code, with the hub pod's data and content folders, whatever the files say.

    No environment layer: the rendered values must not depend on who renders them. No secrets
    either: an OIDC client secret, which the values never contain, is stood in for.
    """
    oidc = layers.get("auth", {}).get("type") == "oidc"
    config = layered_config(secrets=RENDER_SECRETS if oidc else {}, admin=layers, environ={})
    return merge_layers(config, {"data_dir": HUB_DATA_DIR, "content_dir": HUB_CONTENT_DIR})


def kubernetes_config(**paths: Path) -> dict[str, Any]:
    """The merged platform settings of the cluster (see :func:`platform_layers` for ``paths``)."""
    return full_config(platform_layers(**paths))


def constraint_versions(path: Path = CONSTRAINTS_PATH) -> dict[str, str]:
    """Pinned versions by normalised package name (``tensorflow-cpu``), from the constraints file."""
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name.strip()).lower()] = version.strip()
    return pins


def image_tag(variant: str, *, constraints: Path = CONSTRAINTS_PATH) -> str:
    """The single-user image tag: the PyTorch and TensorFlow versions the tests run, and the variant."""
    pins = constraint_versions(constraints)
    return f"torch{pins['torch']}-tf{pins['tensorflow-cpu']}-{variant}"


def parse_bytes(size: str) -> int:
    """JupyterHub's byte notation (``4G``, ``512M``; powers of 1024) in bytes."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([KMGT]?)", size)
    if not match:
        raise ConfigError(f"{size!r} is not a size like 4G or 512M")
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2)])


# --- values ---------------------------------------------------------------------------------------

def profile_entry(profile: Profile, *, kubernetes: Mapping[str, Any], default: bool,
                  constraints: Path = CONSTRAINTS_PATH) -> dict[str, Any]:
    """One KubeSpawner profile: limits and requests, and for a GPU profile its GPUs, image and nodes."""
    override: dict[str, Any] = {}
    if profile.cpu_limit is not None:
        override["cpu_limit"] = profile.cpu_limit
        override["cpu_guarantee"] = round(profile.cpu_limit * kubernetes["cpu_guarantee_ratio"], 3)
    if profile.mem_limit is not None:
        override["mem_limit"] = profile.mem_limit
        override["mem_guarantee"] = f"{parse_bytes(profile.mem_limit) * kubernetes['mem_guarantee_ratio'] // 2**20:.0f}M"
    if profile.gpus:
        # Whole GPUs through the device plugin; Kubernetes never shares one between pods.
        override["extra_resource_limits"] = {GPU_RESOURCE: str(profile.gpus)}
        override["image"] = f"{kubernetes['images']['gpu']}:{image_tag('gpu', constraints=constraints)}"
        override["node_selector"] = dict(kubernetes["gpu_node_selector"])
        override["tolerations"] = [dict(t) for t in kubernetes["gpu_tolerations"]]
    entry = {"display_name": profile.display_name, "slug": profile.slug, "description": profile.description,
             "kubespawner_override": override}
    if default:
        entry["default"] = True
    return entry


# How each kind of managed service is told to listen on every address of the hub pod: its URL's
# host is the hub's Service, an address no process in the pod can bind.
BIND_ALL_ADDRESSES = {
    "jupyterhub.singleuser": "--ServerApp.ip=0.0.0.0",
    "grader.hub.spawn.singleuser": "--ServerApp.ip=0.0.0.0",  # jupyterhub.singleuser, started faster
    "grader.seats.service": "--ip=0.0.0.0",
    "grader.exchange.service": "--ip=0.0.0.0",
}


def _in_hub_pod(service: dict[str, Any]) -> dict[str, Any]:
    """A managed service as the one-machine hub runs it, moved into the hub pod.

    It listens on every address of the pod and the proxy (and users' pods, for the exchange)
    reach it through the hub's Service; it runs on the hub image's Python, as the image's
    unprivileged user.
    """
    moved = {key: value for key, value in service.items() if key != "name"}
    port = int(service["url"].rsplit(":", 1)[1])
    moved["url"] = f"http://{HUB_SERVICE_HOST}:{port}"
    module = service["command"][2] if service["command"][1:2] == ["-m"] else None
    if module not in BIND_ALL_ADDRESSES:
        raise ConfigError(f"service {service['name']}: no way known to make {module or service['command']} "
                          "listen on every address of the hub pod (grader.hub.kubernetes.values.BIND_ALL_ADDRESSES)")
    # The one-machine address (--ip=127.0.0.1) goes; every address of the pod replaces it.
    command = [HUB_PYTHON, *(arg for arg in service["command"][1:]
                             if arg != "--allow-root" and not arg.startswith("--ip="))]
    command.append(BIND_ALL_ADDRESSES[module])
    moved["command"] = command
    if "JUPYTER_CONFIG_PATH" in moved.get("environment", {}):
        moved["environment"] = {**moved["environment"],
                                "JUPYTER_CONFIG_PATH": str(HUB_IMAGE_PACKAGE_DIR / STAFF_JUPYTER_CONFIG.relative_to(PACKAGE_DIR))}
    return moved


def hub_services(settings: HubSettings) -> dict[str, dict[str, Any]]:
    """``hub.services``: each course's formgrader, the seats service and the HTTP exchange, keyed by
    name so overlays merge.

    The idle culler is not here: the chart runs its own from ``cull``.
    """
    services = [course_service(settings, course) for course in settings.courses] + seats_services(settings)
    if uses_http_exchange(settings):
        services.append(exchange_service(settings))
    return {service["name"]: _in_hub_pod(service) for service in services}


def hub_roles(settings: HubSettings) -> list[dict[str, Any]]:
    """``hub.loadRoles`` as the one-machine hub loads them (less the chart's own culler's)."""
    return (roles_with_identity_groups(platform_roles(settings), settings.auth) + seats_roles(settings)
            + (exchange_roles(settings) if uses_http_exchange(settings) else []))


def pod_exchange_url(settings: HubSettings) -> str:
    """The HTTP exchange as users' pods reach it: the hub's Service, on the exchange's port."""
    return f"http://{HUB_SERVICE_HOST}:{settings.exchange.service_port}/services/{EXCHANGE_SERVICE}/"


def singleuser_hub_values(settings: HubSettings) -> dict[str, Any]:
    """``singleuser`` values for what users' servers call in the hub pod: the HTTP exchange's URL,
    the seats service's lesson-run reports (``grader.seats.lesson_reports``, enabled in the
    single-user images), and one egress rule to the hub pod on those ports (the chart's policy lets
    users' pods reach the hub on 8081 only; Helm replaces lists, so it is one rule for both)."""
    environment: dict[str, str] = {}
    ports: list[int] = []
    if uses_http_exchange(settings):
        environment[EXCHANGE_URL_ENV] = pod_exchange_url(settings)
        ports.append(settings.exchange.service_port)
    if settings.seats.enabled:
        environment[LESSONS_URL_ENV] = lessons_url(settings, host=HUB_SERVICE_HOST)
        ports.append(settings.seats.service_port)
    if not environment:
        return {}
    return {
        "extraEnv": environment,
        "networkPolicy": {"egress": [{"to": [{"podSelector": {"matchLabels": dict(HUB_POD_LABELS)}}],
                                      "ports": [{"port": port, "protocol": "TCP"} for port in sorted(set(ports))]}]},
    }


def kernel_culling_config(settings: HubSettings) -> dict[str, Any]:
    """``hub.config.KubeSpawner.args``: users' servers shut down idle kernels, as on one machine
    (``c.Spawner.args`` there); the chart's ``cull`` stops idle servers, not kernels."""
    culling = settings.kernel_culler
    args = kernel_culling_args(culling.timeout, culling.cull_every, culling.cull_connected)
    return {"KubeSpawner": {"args": args}} if args else {}


def pod_logo_path(logo: Path) -> PurePosixPath:
    return HUB_LOGO_DIR / f"logo{logo.suffix.lower()}"


def logo_file(settings: HubSettings) -> tuple[dict[str, Any], PurePosixPath | None]:
    """``hub.extraFiles`` entry carrying ``branding.logo`` into the hub pod, and its path there."""
    logo = settings.branding.logo
    if logo is None:
        return {}, None
    if not logo.is_file():
        raise ConfigError(f"branding.logo: {logo} is not a file")
    content = logo.read_bytes()
    if len(content) > LOGO_MAX_BYTES:
        raise ConfigError(f"branding.logo: {logo} is {len(content)} bytes; at most {LOGO_MAX_BYTES} go into the "
                          "chart's Secret (Kubernetes caps one at 1 MiB)")
    target = pod_logo_path(logo)
    return {"branding-logo": {"mountPath": str(target), "binaryData": base64.b64encode(content).decode("ascii")}}, target


def render_values(layers: Mapping[str, Any], *, constraints: Path = CONSTRAINTS_PATH) -> dict[str, Any]:
    """The chart values that follow from the platform's settings files ``layers`` (:func:`platform_layers`)."""
    config = full_config(layers)
    settings = settings_from_config(config)
    kubernetes = merge_layers(KUBERNETES_DEFAULTS, config.get("kubernetes", {}))
    services = hub_services(settings)
    ports = sorted(int(service["url"].rsplit(":", 1)[1]) for service in services.values())
    roles = hub_roles(settings)
    culling = settings.idle_culler
    # The files' settings, for the hub pod to layer over its defaults as on one machine; the data
    # and content folders are the pod's (AICOURSE_DATA_DIR, AICOURSE_CONTENT_DIR in values.yaml) and
    # the kubernetes block only matters here.
    platform_file = {key: value for key, value in layers.items() if key not in ("kubernetes", "data_dir", "content_dir")}
    logo_files, pod_logo = logo_file(settings)
    if pod_logo is not None:  # the pod's copy, not the renderer's path
        platform_file["branding"] = {**platform_file["branding"], "logo": str(pod_logo)}
    hub_config = kernel_culling_config(settings)
    return {
        "hub": {
            "services": services,
            "loadRoles": {role["name"]: {k: v for k, v in role.items() if k != "name"} for role in roles},
            "extraFiles": {"platform-yaml": {"mountPath": HUB_CONFIG_FILE, "data": platform_file}, **logo_files},
            **({"config": hub_config} if hub_config else {}),
            "service": {"extraPorts": [{"name": f"svc-{port}", "port": port, "targetPort": port} for port in ports]},
            "networkPolicy": {"allowedIngressPorts": ports},
        },
        "singleuser": {
            "image": {"name": kubernetes["images"]["cpu"], "tag": image_tag("cpu", constraints=constraints)},
            "profileList": [profile_entry(profile, kubernetes=kubernetes, default=index == 0, constraints=constraints)
                            for index, profile in enumerate(settings.profiles)],
            **singleuser_hub_values(settings),
        },
        "cull": {"enabled": culling.enabled, "timeout": culling.timeout, "every": culling.cull_every,
                 "maxAge": culling.max_age},
    }


GENERATED_HEADER = """\
# GENERATED by `python -m grader.hub.kubernetes values` from hub_config/platform.yaml and
# hub_config/helm/platform.kubernetes.yaml: do not edit; change those files and run it again
# (tests/hub/kubernetes/test_helm_values.py fails while this file is stale). Applied after values.yaml, before the
# environment's overlay (see deploy.sh).
"""


def rendered_values_text(layers: Mapping[str, Any], *, constraints: Path = CONSTRAINTS_PATH) -> str:
    return GENERATED_HEADER + yaml.safe_dump(render_values(layers, constraints=constraints), sort_keys=False,
                                             default_flow_style=False, width=100)


# --- in the hub pod -------------------------------------------------------------------------------

def apply_kubernetes_settings(c, settings: HubSettings) -> None:
    """Set, in the hub pod, the traits the chart leaves to the platform (after the chart's own config)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    update_auth(c, settings)
    update_courses(c, settings)
    update_seats(c, settings)
    # The logo is the copy hub.extraFiles mounts (logo_file).
    update_branding(c, settings, missing_logo_hint=" (render the values again: python -m grader.hub.kubernetes values)")
    c.Authenticator.admin_users = set(settings.admins)
    # Seats: checked at each start and metered, as the spawn form does on one machine.
    chart_profiles = c.KubeSpawner.profile_list if "profile_list" in c.KubeSpawner else []
    if isinstance(chart_profiles, ProfileAccess):  # applied a second time
        chart_profiles = chart_profiles.chart_profiles
    access = ProfileAccess(chart_profiles or [], settings.profiles, policy=seats_policy(settings))
    if chart_profiles:
        c.KubeSpawner.profile_list = access
    c.KubeSpawner.pre_spawn_hook = access.pre_spawn_hook
    c.KubeSpawner.post_stop_hook = access.post_stop_hook
    # What a server's token may do, as on one machine (nbgrader's hub plugin, the exchange).
    c.KubeSpawner.server_token_scopes = server_token_scopes(settings)


# --- command line ---------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.hub.kubernetes.values", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    values = commands.add_parser("values", help="write the chart values that follow from the platform settings")
    values.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    values.add_argument("--kubernetes", type=Path, default=KUBERNETES_LAYER_PATH)
    values.add_argument("--out", type=Path, default=RENDERED_VALUES_PATH, help="'-' for standard output")
    tag = commands.add_parser("image-tag", help="print the single-user image tag of a variant")
    tag.add_argument("variant", choices=["cpu", "gpu"])
    args = parser.parse_args(argv)
    try:
        if args.command == "image-tag":
            print(image_tag(args.variant))
            return 0
        text = rendered_values_text(platform_layers(admin_path=args.config, kubernetes_path=args.kubernetes))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if str(args.out) == "-":
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
