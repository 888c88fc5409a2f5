"""The hub process's own start and stop, beyond JupyterHub's traits (called by ``configure_hub``).

- **PATH**: JupyterHub's ``upgrade_db`` and nbgrader (in the formgraders and users' servers, which
  inherit the hub's environment) run ``alembic`` as a program. ``.venv/bin/jupyterhub`` started
  without the venv on ``PATH`` would fail there, so the interpreter's own ``bin`` folder is put on it.
- **SIGINT**: a hub started where SIGINT is ignored (``make hub &`` in a script, CI runners, any
  non-interactive shell's background job) passes that on to every service and server it starts:
  JupyterHub stops each of them with SIGINT first and waits ``interrupt_timeout`` (10 s) before
  SIGTERM, one service after another, so stopping such a hub took about a minute. The default
  handler is put back before anything is started.
- **Stop**: on SIGINT or SIGTERM JupyterHub 6.1 starts its cleanup but leaves its periodic checks
  running; its service health check then reads the server of a service already being stopped
  (``Server.from_orm(None)``: an ``AttributeError`` traceback in the log). Once the hub runs, both
  signals call ``JupyterHub.stop()``, its own orderly stop, which ends the periodic checks and the
  hub's HTTP server first and then does the same cleanup.
- **Ready**: the first-start passwords are printed when the accounts are made, ~90 log lines
  before the hub can be used. Once it runs, a last block gives the URL and the accounts made by
  this start, with their passwords, and how to stop it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from grader.hub.settings import HubSettings
from grader.resources import interpreter_bin_on_path

RULE = "=" * 72


def restore_default_sigint() -> bool:
    """Give SIGINT its default handler back where the hub inherited it ignored; True if it was."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return False
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return True


def public_url(settings: HubSettings) -> str:
    """Where people open the hub: the TLS front's address with ``https.enabled``, else the proxy's."""
    https = settings.https
    if https.enabled:
        host = https.domain or (settings.ip if https.address in ("", "0.0.0.0", "::") else https.address)
        return f"https://{host}" + ("" if https.port == 443 else f":{https.port}")
    return f"http://{settings.ip}:{settings.port}"


def ready_banner(url: str, accounts: dict[str, str], *, courses: list[str] = ()) -> str:
    """The block printed last once the hub answers: where it is, the accounts this start made."""
    lines = ["", RULE, f"The course platform is running at {url}"]
    if accounts:
        lines += ["", "Accounts created by this first start (passwords are not shown again: note them):"]
        lines += [f"  user: {name:<12} password: {password}" for name, password in accounts.items()]
    lines += [f"Course {course_id}: its formgrader is {url}/services/{course_id}/formgrader" for course_id in courses]
    lines += ["Stop the hub with Ctrl-C (it stops every server and service in a few seconds).", RULE, ""]
    return "\n".join(lines)


def _stop_on_signals(app, log: logging.Logger) -> None:
    """SIGINT and SIGTERM call ``app.stop()`` (see the module's docstring); a second one is only logged."""
    loop = asyncio.get_running_loop()
    stopping = []

    def on_signal(signum: signal.Signals) -> None:
        if stopping:
            log.warning("Received %s: already stopping", signum.name)
            return
        stopping.append(signum)
        log.critical("Received %s: stopping the hub, its services and servers", signum.name)
        app.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)


async def _when_running(app, settings: HubSettings) -> None:
    await app._start_future  # JupyterHub's own "start() finished" (its init_signal ran just before)
    _stop_on_signals(app, app.log)
    accounts = dict(getattr(app.authenticator, "first_start_accounts", None) or {})
    banner = ready_banner(public_url(settings), accounts, courses=[course.course_id for course in settings.courses])
    # stdout, beside the first-start block (grader.hub.auth.local), not the log, which may be shipped elsewhere.
    print(banner, file=sys.stdout, flush=True)


def prepare_process() -> None:
    """What the hub process needs before JupyterHub starts anything (PATH, SIGINT)."""
    interpreter_bin_on_path()
    restore_default_sigint()


def when_running(settings: HubSettings) -> bool:
    """Once the JupyterHub loading this configuration runs: the stop signals and the ready block.

    False (nothing scheduled) outside a starting JupyterHub, e.g. a test applying settings to a bare
    ``Config`` or ``jupyterhub --generate-config``."""
    try:
        from jupyterhub.app import JupyterHub

        loop = asyncio.get_running_loop()
    except (ImportError, RuntimeError):
        return False
    if not JupyterHub.initialized():
        return False
    app = JupyterHub.instance()
    if not isinstance(getattr(app, "_start_future", None), asyncio.Future):
        return False
    task = loop.create_task(_when_running(app, settings))
    _keep.add(task)
    task.add_done_callback(_keep.discard)
    return True


# Tasks the loop only holds weakly.
_keep: set = set()
