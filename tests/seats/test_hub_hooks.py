"""The seats hooks in the hub pod on Kubernetes: the database is asked once per server start.

KubeSpawner looks at ``profile_list`` again inside ``start()`` (``load_user_options``), after the
pre-spawn hook already asked the seats policy: the policy's answer is kept for that start, so one
start is one decision (one session: staff or not, then the seat) and one metering write. No hub
runs here; the spawner is a real KubeSpawner on the hub pod's config (see tests/hub/kubernetes).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy import event

from grader.hub.services.seats import seats_policy
from grader.seats.db import close_seats_db
from grader.seats.store import assign_seat, create_cohort, create_organisation
from tests.hub.kubernetes.test_helm_values import _hub_pod_config, _kubespawner, _User, kubeconfig  # noqa: F401


def test_a_server_start_asks_the_seats_database_once(tmp_path, kubeconfig):  # noqa: F811
    c, settings = _hub_pod_config(tmp_path)
    sessions = seats_policy(settings).sessions
    today = datetime.now(timezone.utc).date()
    with sessions() as session:
        org = create_organisation(session, name="Acme", contact_email="seats@acme.example")
        cohort = create_cohort(session, organisation_id=org.id, name="spring", course_id="ai101",
                               starts_on=today - timedelta(days=1), ends_on=today + timedelta(days=30),
                               seat_limit=5, profiles=["cpu"])
        assign_seat(session, cohort_id=cohort.id, username="learner")

    engine = sessions.kw["bind"]
    transactions, decisions = [], []
    event.listen(engine, "begin", lambda connection: transactions.append(1))
    # The staff check (cohort admins named in the database) opens every decision.
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: decisions.append(1) if "org_admins" in statement else None)

    async def start():
        spawner = _kubespawner(c, _User("learner", "nbgrader-ai101"), profile="cpu")
        spawner._spawn_pending = True  # as JupyterHub's spawn_single_user sets it before the hooks run
        await spawner.run_pre_spawn_hook()
        await spawner.load_user_options()  # what KubeSpawner.start() does first
        assert spawner.cpu_limit == 2
        spawner._spawn_pending = False
        return spawner

    try:
        spawner = asyncio.run(start())
        # One decision, one metering write; before, three looks (form check, hook, load_user_options).
        assert (len(decisions), len(transactions)) == (1, 2)
        # Outside a start (the spawn form), the list asks again: a revoked seat shows at once.
        asyncio.run(spawner.profile_list(spawner))
        assert len(decisions) == 2
    finally:
        close_seats_db(sessions)
