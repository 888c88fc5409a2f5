"""Upgrades: a hub database the previous release wrote is migrated when the new one starts on it.

On one machine the hub runs with ``c.JupyterHub.upgrade_db`` (grader/hub/config.py), so JupyterHub
backs the SQLite file up and applies its own Alembic migrations at start; the seats database is
brought to its newest revision when the hub opens it (grader/seats/db.py). On Kubernetes the chart
passes ``--upgrade-db`` when ``hub.db.upgrade`` is true (hub_config/helm/*.values.yaml).

The old database is made genuinely: the real hub of this release writes it (users, an admin, a group
with properties, tokens, the accounts, the seats tables), then JupyterHub's own migrations
(jupyterhub/alembic) take it down to the schema JupyterHub 5.x writes, and the seats migrations take
the seats database down to the revision the previous platform release shipped. JupyterHub 6.0 and
6.1 share one schema, so the previous JupyterHub with a different one is 5.x: the 5.0 to 5.5
releases (Zero-to-JupyterHub 4.x's hub image too) all end at revision 4621fec11365. That the
downgraded schema is 5.5.4's was checked once against a database made by 5.5.4's own ``orm``.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from alembic.script import ScriptDirectory
from jupyterhub.dbutil import _temp_alembic_ini

from grader.resources import HUB_CONFIG_DIR
from tests.support.hubfixture import api_token, free_port, login, start_hub, stop_hub

HELM_DIR = HUB_CONFIG_DIR / "helm"
JUPYTERHUB_5_REVISION = "4621fec11365"
# What JupyterHub 6.x's migrations after 4621fec11365 add; the 5.x schema has none of it.
ADDED_SINCE_5 = {("services", "timeout"), ("oauth_codes", "code_challenge"),
                 ("oauth_codes", "code_challenge_method"), ("users", "user_info"), ("spawners", "display_name")}
# The seats revision of the previous platform release (its only one; 0002 came after it).
PREVIOUS_SEATS_REVISION = "0001"


def _columns(db: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(db) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {(table, row[1]) for table in tables for row in connection.execute(f"PRAGMA table_info('{table}')")}


def _scalar(db: Path, query: str):
    with sqlite3.connect(db) as connection:
        return connection.execute(query).fetchone()[0]


def _jupyterhub_head(db_url: str) -> str:
    from alembic.config import Config

    with _temp_alembic_ini(db_url) as ini:
        return ScriptDirectory.from_config(Config(ini)).get_current_head()


def _downgrade_hub_db(db: Path, revision: str) -> None:
    """JupyterHub's own migrations, run as ``jupyterhub upgrade-db`` runs them (its alembic.ini)."""
    with _temp_alembic_ini(f"sqlite:///{db}") as ini:
        subprocess.run([sys.executable, "-m", "alembic", "-c", ini, "downgrade", revision], check=True,
                       capture_output=True, text=True)


def _downgrade_seats_db(db: Path, revision: str) -> None:
    from grader.seats.db import downgrade, make_engine

    engine = make_engine(f"sqlite:///{db}")
    try:
        downgrade(engine, revision=revision)
    finally:
        engine.dispose()


def _seats_head() -> str:
    from grader.seats.db import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _api(hub, token, method, path, **kwargs) -> requests.Response:
    return requests.request(method, f"{hub.url}/hub/api{path}", headers={"Authorization": f"token {token}"},
                            timeout=30, **kwargs)


@pytest.mark.slow
@pytest.mark.hub
def test_the_hub_upgrades_a_database_of_the_previous_release_and_keeps_its_contents(tmp_path, monkeypatch):
    config_file = tmp_path / "platform.yaml"
    config_file.write_text(yaml.safe_dump({
        "admins": ["ada"],
        "exchange": {"backend": "files"},
        "seats": {"enabled": True, "service_port": free_port()},
        "courses": {"ai101": {"formgrader_port": 8010, "instructors": ["ian"], "students": ["sam"]}},
    }))
    monkeypatch.setenv("AICOURSE_CONFIG", str(config_file))
    data_dir = tmp_path / "data"
    hub_db, seats_db = data_dir / "jupyterhub.sqlite", data_dir / "seats.sqlite"

    # --- the previous release's hub runs, and people use it ------------------------------------
    hub = start_hub(data_dir)
    try:
        passwords = dict(hub.passwords)
        admin = api_token(hub, login(hub, "ada", passwords["ada"]), "ada")
        instructor = api_token(hub, login(hub, "ian", passwords["ian"]), "ian")
        assert _api(hub, admin, "POST", "/users/zoe").status_code == 201
        assert _api(hub, admin, "POST", "/groups/evening-club", json={"users": ["sam", "zoe"]}).status_code == 201
        assert _api(hub, admin, "PUT", "/groups/evening-club/properties", json={"room": "B12"}).status_code == 200
    finally:
        stop_hub(hub)
    with sqlite3.connect(seats_db) as connection:
        connection.execute("INSERT INTO organisations (id, name, contact_email) VALUES (7, 'Evening school', "
                           "'office@example.org')")

    # --- its databases, as the previous release left them ---------------------------------------
    head = _jupyterhub_head(f"sqlite:///{hub_db}")
    assert _scalar(hub_db, "SELECT version_num FROM alembic_version") == head != JUPYTERHUB_5_REVISION
    _downgrade_hub_db(hub_db, JUPYTERHUB_5_REVISION)
    assert _scalar(hub_db, "SELECT version_num FROM alembic_version") == JUPYTERHUB_5_REVISION
    assert _columns(hub_db) & ADDED_SINCE_5 == set()
    _downgrade_seats_db(seats_db, PREVIOUS_SEATS_REVISION)
    assert _scalar(seats_db, "SELECT version_num FROM seats_alembic_version") == PREVIOUS_SEATS_REVISION
    old_bytes = hub_db.read_bytes()

    # --- this release starts on them --------------------------------------------------------------
    hub = start_hub(data_dir)
    try:
        # JupyterHub backed the old file up first, then migrated it.
        backups = sorted(data_dir.glob("jupyterhub.sqlite.*"))
        assert [backup.read_bytes() for backup in backups] == [old_bytes]
        assert "Upgrading sqlite:///" in hub.log()
        assert _scalar(hub_db, "SELECT version_num FROM alembic_version") == head
        assert ADDED_SINCE_5 <= _columns(hub_db)
        assert _scalar(seats_db, "SELECT version_num FROM seats_alembic_version") == _seats_head()
        assert _scalar(seats_db, "SELECT name FROM organisations WHERE id = 7") == "Evening school"

        # Users, the admin, groups with their properties and tokens are all still there.
        me = _api(hub, instructor, "GET", "/user")
        assert me.status_code == 200 and me.json()["name"] == "ian"
        users = {user["name"]: user for user in _api(hub, admin, "GET", "/users").json()}
        assert {"ada", "ian", "sam", "zoe"} <= set(users) and users["ada"]["admin"] and not users["zoe"]["admin"]
        group = _api(hub, admin, "GET", "/groups/evening-club").json()
        assert sorted(group["users"]) == ["sam", "zoe"] and group["properties"] == {"room": "B12"}
        assert "nbgrader-ai101" in users["sam"]["groups"]
        # The accounts kept their passwords.
        assert login(hub, "ian", passwords["ian"]).get(f"{hub.url}/hub/home").status_code == 200
    finally:
        stop_hub(hub)


def test_every_helm_overlay_with_an_external_database_asks_the_chart_to_upgrade_it():
    """The chart migrates sqlite-pvc by itself; an external database (PostgreSQL in production)
    needs ``hub.db.upgrade: true``, or a newer JupyterHub in the hub image refuses to start."""
    base = yaml.safe_load((HELM_DIR / "values.yaml").read_text())["hub"]["db"]
    assert base["type"] == "sqlite-pvc" and base.get("upgrade") is True
    external = {}
    for overlay in sorted(HELM_DIR.glob("*.values.yaml")):
        db = ((yaml.safe_load(overlay.read_text()) or {}).get("hub") or {}).get("db") or {}
        if db.get("type", "sqlite-pvc") not in ("sqlite-pvc", "sqlite-memory"):
            external[overlay.name] = db.get("upgrade")
    assert external == {"production.values.yaml": True}
