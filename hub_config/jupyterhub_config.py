# JupyterHub configuration for the AI course platform. Kept thin on purpose: the settings and the
# code that applies them live in the `grader.hub` package, where they are tested. The settings are
# layered: defaults in code, <data_dir>/secrets.yaml, platform.yaml beside this file (or
# $AICOURSE_CONFIG), then AICOURSE_* environment variables (see README, "Settings"). Files in
# jupyterhub_config.d/ run last, in sorted order.
from pathlib import Path

from grader.hub.config import apply_settings, prepare_machine
from grader.hub.settings import load_settings

c = get_config()  # noqa: F821
settings = load_settings()
apply_settings(c, settings)
# Secure mode (the default as root) checks and locks down this machine; demo mode says so.
prepare_machine(settings)

for extra_config in sorted((Path(__file__).parent / "jupyterhub_config.d").glob("*.py")):
    load_subconfig(str(extra_config))  # noqa: F821
