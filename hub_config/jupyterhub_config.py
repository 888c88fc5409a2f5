# JupyterHub configuration for the AI course platform. Kept thin on purpose: the settings and the
# code that applies them live in the `grader.hub` package, where they are tested; the same two lines
# configure a hub from an installed wheel (README, "Installing the package"). The settings are
# layered: defaults in code, <data_dir>/secrets.yaml, platform.yaml beside this file (or
# $AICOURSE_CONFIG), then AICOURSE_* environment variables (see README, "Settings"). Files in
# jupyterhub_config.d/ run last, in sorted order.
from pathlib import Path

from grader.hub.config import configure_hub

configure_hub(get_config())  # noqa: F821

for extra_config in sorted((Path(__file__).parent / "jupyterhub_config.d").glob("*.py")):
    load_subconfig(str(extra_config))  # noqa: F821
