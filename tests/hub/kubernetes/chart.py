"""The Zero-to-JupyterHub chart the tests check the values against, and Helm's merge of the values files.

The chart is not in the repository (its licence and size aside, a copy would go stale): CI and
developers point at an unpacked one. :func:`locate_chart` looks, in this order, at

1. ``$Z2JH_CHART_DIR`` (``helm pull jupyterhub --repo https://hub.jupyter.org/helm-chart/
   --version 4.4.0 --untar -d /tmp/chart`` gives ``/tmp/chart/jupyterhub``),
2. ``<repository>/../shared/z2jh/jupyterhub-<version>``, the copy laid beside a checkout,
3. ``/work/shared/z2jh/jupyterhub-<version>``,

and fails, naming all three, when none holds the chart at ``deploy.sh``'s ``CHART_VERSION``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import yaml

from grader.hub.kubernetes.values import HELM_DIR
from grader.resources import REPO_ROOT

CHART_DIR_ENV = "Z2JH_CHART_DIR"
SHARED_CHARTS = Path("/work/shared/z2jh")
SECRET_EXAMPLE = HELM_DIR / "secret.values.example.yaml"
# The release name deploy.sh installs (RELEASE's default).
RELEASE = "aicourse"


class ChartNotFound(Exception):
    """No unpacked chart of the deployed version where the tests look."""


def chart_version(helm_dir: Path = HELM_DIR) -> str:
    """The chart version deploy.sh deploys (its ``CHART_VERSION``)."""
    return re.search(r"^CHART_VERSION=(\S+)$", (helm_dir / "deploy.sh").read_text(), re.M).group(1)


def chart_candidates(environ: Mapping[str, str] = os.environ, repo_root: Path = REPO_ROOT,
                     shared: Path = SHARED_CHARTS, version: str | None = None) -> list[tuple[str, Path]]:
    """Where the chart is looked for, in order, each with what points there."""
    version = version or chart_version()
    if environ.get(CHART_DIR_ENV):
        # Named explicitly: nothing else is tried, so a wrong path is not hidden by a fallback.
        return [(f"${CHART_DIR_ENV}", Path(environ[CHART_DIR_ENV]))]
    return [("beside the checkout", repo_root.parent / "shared" / "z2jh" / f"jupyterhub-{version}"),
            ("the shared folder", shared / f"jupyterhub-{version}")]


def locate_chart(environ: Mapping[str, str] = os.environ, repo_root: Path = REPO_ROOT,
                 shared: Path = SHARED_CHARTS) -> Path:
    """The unpacked chart of deploy.sh's version (see the module's docstring); :class:`ChartNotFound` if none."""
    version = chart_version()
    candidates = chart_candidates(environ, repo_root, shared, version)
    for source, path in candidates:
        if not (path / "values.schema.json").is_file():
            continue
        found = yaml.safe_load((path / "Chart.yaml").read_text())["version"]
        if found != version:
            raise ChartNotFound(f"the chart at {path} ({source}) is version {found}; deploy.sh deploys {version}")
        return path
    looked = "; ".join(f"{path} ({source})" for source, path in candidates)
    raise ChartNotFound(
        f"no Zero-to-JupyterHub chart {version} found (looked at: {looked}). The values must be validated "
        f"against the chart's own values.schema.json: unpack the chart (helm pull jupyterhub --repo "
        f"https://hub.jupyter.org/helm-chart/ --version {version} --untar -d /tmp/chart) and set "
        f"{CHART_DIR_ENV}=/tmp/chart/jupyterhub")


# --- Helm's merge, and deploy.sh's order ------------------------------------------------------------

def helm_merge(*layers):
    """Merge values files as ``helm -f a -f b`` does: maps key by key, anything else (lists
    included) replaced whole by the later file, and ``null`` deleting the key."""
    merged: dict = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is None:
                merged.pop(key, None)
            elif isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = helm_merge(merged[key], value)
            else:
                merged[key] = value
    return merged


def environments(helm_dir: Path = HELM_DIR) -> list[str]:
    """Every environment overlay, ``<env>.values.yaml`` (not the rendered platform values, not secrets)."""
    return sorted(path.name.removesuffix(".values.yaml") for path in helm_dir.glob("*.values.yaml")
                  if path.name != "platform.values.yaml" and not path.name.endswith(".secret.values.yaml"))


def deploy_order(env: str) -> list[str]:
    """The values files deploy.sh passes to helm for ``env``, in its order (read from the script)."""
    script = (HELM_DIR / "deploy.sh").read_text()
    body = re.search(r"values_files\(\) \{(.*?)\n\}", script, re.S).group(1)
    return [name.replace("$env", env) for name in re.findall(r'echo "\$HERE/([^"]+)"', body)]


def load_values_file(name: str):
    path = HELM_DIR / name
    if name.endswith(".secret.values.yaml") and not path.exists():
        # The encrypted files hold real secrets and are not in the repository; the example has
        # the same keys with placeholders.
        path = SECRET_EXAMPLE
    return yaml.safe_load(path.read_text())


def merged_values(env: str, replace: Mapping[str, dict] | None = None) -> dict:
    """The files deploy.sh gives helm for ``env``, merged; ``replace`` swaps a file's content by
    name (``{"platform.values.yaml": render_values(...)}``)."""
    replace = replace or {}
    return helm_merge(*(replace[name] if name in replace else load_values_file(name) for name in deploy_order(env)))


def chart_values(chart: Path, values: Mapping) -> dict:
    """What helm validates and renders with: the chart's own values.yaml, then ours."""
    return helm_merge(yaml.safe_load((chart / "values.yaml").read_text()), values)
