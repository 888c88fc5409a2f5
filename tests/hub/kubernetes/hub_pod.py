"""Initialise JupyterHub as the chart's hub pod would, and print what it set up, as JSON.

    python -m tests.hub.kubernetes.hub_pod ROOT initialize|load

ROOT stands for the pod's /usr/local/etc/jupyterhub, laid out by tests/hub/kubernetes/test_hub_pod.py:
the chart's jupyterhub_config.py and z2jh.py, its config/ and secret/ mounts, and the hub image's
jupyterhub_config.d. ``initialize`` runs JupyterHub's own start-up up to serving (config, database,
authenticator, users, roles, services, spawners), ``load`` only loads the config (for a database
that cannot be reached here). Run it with the hub image's Python to check that image's packages.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import types


def curl_client_stand_in() -> str:
    """The chart's config selects tornado's curl HTTP client, which needs pycurl: the hub image has it
    (its base installs it); where it is missing, a stand-in module that is the simple client.
    Nothing here makes an HTTP request."""
    if importlib.util.find_spec("pycurl"):
        return "pycurl"
    from tornado.simple_httpclient import SimpleAsyncHTTPClient

    module = types.ModuleType("tornado.curl_httpclient")
    module.CurlAsyncHTTPClient = type("CurlAsyncHTTPClient", (SimpleAsyncHTTPClient,), {})
    sys.modules["tornado.curl_httpclient"] = module
    return "stand-in"


async def initialize(root: str, mode: str) -> dict:
    import jupyterhub
    from jupyterhub import orm
    from jupyterhub.app import JupyterHub
    from tornado.httpclient import AsyncHTTPClient

    app = JupyterHub()
    summary: dict = {"jupyterhub": jupyterhub.__version__, "curl": curl_client_stand_in()}
    if mode == "load":
        app.load_config_file(f"{root}/jupyterhub_config.py")
        config = app.config
        import os

        summary.update(db_url=config.JupyterHub.db_url, pgpassword=os.environ.get("PGPASSWORD"),
                       spawner_class=config.JupyterHub.spawner_class,
                       services=sorted(service["name"] for service in config.JupyterHub.services))
        return summary
    await app.initialize(["--config", f"{root}/jupyterhub_config.py"])
    summary.update(
        http_client=AsyncHTTPClient.configured_class().__name__,
        db_url=app.db_url,
        spawner_class=f"{app.spawner_class.__module__}.{app.spawner_class.__name__}",
        authenticator=type(app.authenticator).__name__,
        proxy_api_url=app.proxy.api_url,
        hub_connect_url=app.hub_connect_url,
        services=sorted(app._service_map),
        roles=sorted(role.name for role in app.db.query(orm.Role)),
        groups=sorted(group.name for group in app.db.query(orm.Group)),
        cookie_secret=bool(app.cookie_secret),
        template_vars={key: value for key, value in app.template_vars.items() if key.startswith("aicourse_")},
        logo_file=app.logo_file,
    )
    # A user's server as the hub would make it: KubeSpawner with the chart's and the platform's traits.
    orm_user = orm.User(name="learner")
    app.db.add(orm_user)
    app.db.commit()
    spawner = app.users[orm_user].spawners[""]
    summary["spawner"] = {
        "class": type(spawner).__name__,
        "image": spawner.image,
        "namespace": spawner.namespace,
        "start_timeout": spawner.start_timeout,
        "http_timeout": spawner.http_timeout,
        "cpu_limit": spawner.cpu_limit,
        "storage_capacity": spawner.storage_capacity,
        "scheduler_name": spawner.scheduler_name,
        "chart_label": spawner.common_labels.get("helm.sh/chart"),
        "node_affinity_required": spawner.node_affinity_required,
        "environment": {key: value for key, value in spawner.environment.items() if isinstance(value, str)},
        "init_containers": [getattr(c, "name", None) or c.get("name") for c in spawner.init_containers],
        "profile_list": type(spawner.profile_list).__name__,
        "pre_spawn_hook": getattr(getattr(spawner.pre_spawn_hook, "__self__", None), "__class__", type(None)).__name__,
        "server_token_scopes": sorted(spawner.server_token_scopes),
        "cmd": spawner.cmd,
        "args": spawner.get_args(),
    }
    return summary


if __name__ == "__main__":
    print("HUB-POD " + json.dumps(asyncio.run(initialize(sys.argv[1], sys.argv[2]))))
