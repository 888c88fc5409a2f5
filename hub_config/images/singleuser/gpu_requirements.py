"""Print the platform's ``course`` extra as pip requirements for the GPU single-user image.

The extra names ``tensorflow-cpu`` (what CI and the CPU image run); the GPU image runs TensorFlow's
CUDA build instead: ``tensorflow[and-cuda]`` at the version the constraints pin for
``tensorflow-cpu`` takes its place. Everything else is the extra as ``pyproject.toml`` writes it,
and pip's ``-c requirements/constraints.txt`` pins the versions. Standard library only: it runs in
the image before anything is installed.

    python3 gpu_requirements.py /opt/aicourse > /opt/aicourse/requirements/gpu.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

EXTRA = "course"
CPU_PACKAGE = "tensorflow-cpu"
GPU_REQUIREMENT = "tensorflow[and-cuda]"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def gpu_requirements(project: Path) -> list[str]:
    """The ``course`` extra of ``project``'s pyproject.toml, with TensorFlow's CUDA build for its CPU one."""
    extras = tomllib.loads((project / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = {}
    for line in (project / "requirements" / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[normalise(name.strip())] = version.strip()
    if CPU_PACKAGE not in pins:
        raise SystemExit(f"gpu_requirements: the constraints pin no {CPU_PACKAGE}")
    requirements = [f"{GPU_REQUIREMENT}=={pins[CPU_PACKAGE]}" if requirement_name(requirement) == CPU_PACKAGE
                    else requirement for requirement in extras[EXTRA]]
    if f"{GPU_REQUIREMENT}=={pins[CPU_PACKAGE]}" not in requirements:
        raise SystemExit(f"gpu_requirements: the {EXTRA} extra names no {CPU_PACKAGE} to replace")
    return requirements


if __name__ == "__main__":
    print("\n".join(gpu_requirements(Path(sys.argv[1]))))
