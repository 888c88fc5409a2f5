"""Where the platform's files live, so code never guesses relative to the working directory.

Two kinds, found two ways:

- **Package data**, which the code needs at run time and the wheel ships (``grader/hub/data/``):
  the settings' JSON schema, the hub's page templates, the Jupyter configuration folders of users'
  servers. Read through :mod:`importlib.resources`, so an installed wheel finds them as well as a
  checkout does.
- **Repository content**, which is not package data: the lessons (``courses/``), the nbgrader
  source assignments (``assignments/source/``) and the admin's files (``hub_config/``). They exist
  only in a checkout; the hub's ``content_dir`` setting says where the lessons and assignments
  are, and defaults to the checkout only when there is one (:func:`checkout_root`).
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _on_disk(resource) -> Path:
    """A package-data folder or file as a real path.

    JupyterHub's ``template_paths`` and a server's ``JUPYTER_CONFIG_PATH`` name folders on disk, so
    :func:`importlib.resources.as_file` (which would extract a file to a temporary copy) is no use
    for them. pip unpacks a wheel into site-packages, and an editable install points at the
    checkout, so ``files()`` gives a :class:`pathlib.Path` in both; only a zipped import would not.
    """
    if not isinstance(resource, Path):
        raise RuntimeError(f"grader's package data must be files on disk (a pip install), not {resource!r}")
    return resource


HUB_DATA_DIR = _on_disk(files("grader.hub") / "data")
# The admin's platform YAML (and the secrets file) are checked against it (grader.hub.layers).
SCHEMA_PATH = HUB_DATA_DIR / "platform.schema.json"
# The login, sign-up and admin pages, extending JupyterHub's own (grader.hub.config).
TEMPLATES_DIR = HUB_DATA_DIR / "templates"
# Jupyter configuration folders of users' servers, by kind of user (see its README.md).
JUPYTER_CONFIG_DIRS = HUB_DATA_DIR / "jupyter"


def checkout_root(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The repository holding this package, or None for an installed wheel (site-packages)."""
    root = package_dir.parent
    return root if (root / "pyproject.toml").is_file() and (root / "hub_config").is_dir() else None


# The repository's layout. Meaningful in a checkout only (tests, benchmarks, `make hub`); code that
# also runs from a wheel asks checkout_root() or the hub's content_dir setting instead.
REPO_ROOT = PACKAGE_DIR.parent
COURSES_DIR = REPO_ROOT / "courses"
ASSIGNMENTS_SOURCE_DIR = REPO_ROOT / "assignments" / "source"
HUB_CONFIG_DIR = REPO_ROOT / "hub_config"


def interpreter_bin_on_path(environ=os.environ) -> None:
    """Put this interpreter's own ``bin`` folder (where pip put ``alembic``) first on ``PATH`` when
    it is not on it.

    nbgrader (when it creates a gradebook) and JupyterHub's ``upgrade_db`` run Alembic as a program
    found on ``PATH``: ``.venv/bin/grader ...``, ``.venv/bin/python benchmarks/...`` or
    ``.venv/bin/jupyterhub`` would otherwise stop at "No such file or directory: 'alembic'" unless
    the venv is activated. Child processes inherit it."""
    bin_dir = os.path.dirname(sys.executable)
    entries = [entry for entry in environ.get("PATH", "").split(os.pathsep) if entry]
    if bin_dir and bin_dir not in entries:
        environ["PATH"] = os.pathsep.join([bin_dir, *entries])
