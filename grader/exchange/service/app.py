"""Start the exchange service: a tornado server answering under the hub's service prefix."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from pathlib import Path

from jupyterhub.services.auth import HubAuth
from tornado import web
from tornado.httpserver import HTTPServer

from grader.exchange.service.access import GroupLookup
from grader.exchange.service.handlers import ENCODING_SLACK, routes
from grader.exchange.service.storage import ExchangeStore

DEFAULT_PREFIX = "/services/nbgrader-exchange/"
DEFAULT_MAX_UPLOAD_MB = 100


class StatusHandler(web.RequestHandler):
    """Unauthenticated: says the service is up (the hub and tests poll it), nothing more."""

    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"service": "nbgrader-exchange"}))


def make_app(*, root: Path, courses: list[str], max_upload_bytes: int, prefix: str = DEFAULT_PREFIX,
             hub_auth: HubAuth | None = None) -> web.Application:
    """The tornado application; ``hub_auth`` defaults to the hub's environment for services."""
    hub_auth = hub_auth or HubAuth(cache_max_age=60)
    handler_args = {
        "store": ExchangeStore(root),
        "hub_auth": hub_auth,
        "groups": GroupLookup(api_url=hub_auth.api_url, api_token=hub_auth.api_token),
        "courses": frozenset(courses),
        "max_upload_bytes": max_upload_bytes,
    }
    prefix = "/" + prefix.strip("/")
    return web.Application(
        [(prefix + "/?", StatusHandler)] + [(route, handler, handler_args) for route, handler in routes(prefix)]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m grader.exchange.service", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="storage folder, written only by this service")
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--course", action="append", default=[], dest="courses", help="a course id (repeat)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                        help="largest upload, in MB of files (default: %(default)s)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    max_upload_bytes = int(args.max_upload_mb * (1 << 20))
    app = make_app(root=args.root, courses=args.courses, max_upload_bytes=max_upload_bytes,
                   prefix=os.environ.get("JUPYTERHUB_SERVICE_PREFIX", DEFAULT_PREFIX))
    # Per-request limits are set by the handlers; the server's own cap only has to be above them.
    server = HTTPServer(app, max_body_size=int(max_upload_bytes * ENCODING_SLACK) + (2 << 20))
    server.listen(args.port, args.ip)
    logging.getLogger("tornado.access").info("exchange service on %s:%s, storage %s", args.ip, args.port, args.root)
    # The hub stops its services with SIGINT, then SIGTERM: either ends the service quietly.
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(asctime)s exchange] %(message)s")
    asyncio.run(serve(parse_args(argv)))
