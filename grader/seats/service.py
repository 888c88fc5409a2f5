"""The seats service: a JupyterHub-managed tornado app at ``/services/seats/``.

The hub starts it (:func:`grader.hub.services.seats.seats_service`) with JupyterHub's usual service
environment (``JUPYTERHUB_SERVICE_URL``, ``_SERVICE_PREFIX``, ``_API_URL``, ``_API_TOKEN``, the
OAuth client) plus ``GRADER_SEATS_DB``, and these options::

    python -m grader.seats.service --course ID=COURSE_DIR ... --staff NAME ...
        --sweep-every SECONDS --staff-bypass yes|no [--contact TEXT] [--ip ADDRESS]

It serves the pages (:mod:`grader.seats.pages`) and the REST API (:mod:`grader.seats.api`, which also
takes the lessons learners' servers report, :mod:`grader.seats.lesson_reports`), and every
``--sweep-every`` seconds stops the servers of users whose access ended (:mod:`grader.seats.sweep`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.ioloop import PeriodicCallback

from grader.seats.api import api_routes
from grader.seats.db import close_seats_db, environment_url, open_seats_db
from grader.seats.defaults import URL_ENV
from grader.seats.enforcement import SeatEnforcement
from grader.seats.handlers import ServiceContext
from grader.seats.pages import page_routes
from grader.seats.sweep import HubApi, periodic, sweep_once

PACKAGE_DIR = Path(__file__).resolve().parent
log = logging.getLogger("grader.seats.service")


def make_app(context: ServiceContext, *, cookie_secret: bytes | None = None) -> web.Application:
    prefix = context.prefix
    routes = [
        (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        *api_routes(prefix, context),
        *page_routes(prefix, context),
    ]
    return web.Application(
        routes,
        template_path=str(PACKAGE_DIR / "templates"),
        static_path=str(PACKAGE_DIR / "static"),
        static_url_prefix=url_path_join(prefix, "static/"),
        # Signs the OAuth state cookie; a restart only asks people to log in to the service again.
        cookie_secret=cookie_secret or secrets.token_bytes(32),
    )


def _course(text: str) -> tuple[str, Path]:
    course_id, sep, course_dir = text.partition("=")
    if not sep or not course_id or not course_dir:
        raise argparse.ArgumentTypeError(f"--course wants ID=COURSE_DIR, got {text!r}")
    return course_id, Path(course_dir)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m grader.seats.service", description=__doc__.splitlines()[0])
    parser.add_argument("--course", type=_course, action="append", default=[], help="ID=COURSE_DIR (scores)")
    parser.add_argument("--staff", action="append", default=[], help="an account that needs no seat")
    parser.add_argument("--staff-bypass", choices=["yes", "no"], default="yes")
    parser.add_argument("--sweep-every", type=float, default=60.0, help="seconds between sweeps")
    parser.add_argument("--contact", default="", help="whom refused users without an organisation contact")
    # In a Kubernetes hub pod the URL's host is the hub's Service, which no process can bind.
    parser.add_argument("--ip", default=None, help="address to listen on (default: $JUPYTERHUB_SERVICE_URL's host)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace, environ=os.environ) -> None:
    url = environment_url(environ)
    if url is None:
        raise SystemExit(f"{URL_ENV} is not set: the hub gives its seats service the database's URL there")
    sessions = open_seats_db(url)
    context = ServiceContext(sessions=sessions, prefix=environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/seats/"),
                             hub_prefix=url_path_join(environ.get("JUPYTERHUB_BASE_URL", "/"), "hub/"),
                             course_dirs=dict(args.course))
    service_url = urlparse(environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8020"))
    make_app(context).listen(service_url.port, args.ip or service_url.hostname)
    log.info("seats service at %s%s", environ.get("JUPYTERHUB_SERVICE_URL"), context.prefix)

    enforcement = SeatEnforcement(sessions=sessions, staff_names=frozenset(args.staff),
                                  staff_bypass=args.staff_bypass == "yes", contact=args.contact)
    if environ.get("JUPYTERHUB_API_TOKEN"):
        hub = HubApi(url=environ["JUPYTERHUB_API_URL"], token=environ["JUPYTERHUB_API_TOKEN"])
        sweeper = PeriodicCallback(periodic(partial(sweep_once, enforcement=enforcement, hub=hub)),
                                   args.sweep_every * 1000)
        sweeper.start()
    stop = asyncio.Event()
    # The hub stops its services with SIGTERM: end quietly, closing the database connections.
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("seats service stopping")
    close_seats_db(sessions)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s")
    asyncio.run(serve(parse_args(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
