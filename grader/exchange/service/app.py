"""Start the exchange service: a tornado server answering under the hub's service prefix."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
from pathlib import Path

from jupyterhub.services.auth import HubAuth, HubOAuthCallbackHandler
from tornado import web
from tornado.httpserver import HTTPServer

from grader.exchange.service.access import GroupLookup
from grader.exchange.service.handlers import ENCODING_SLACK, routes
from grader.exchange.service.instant.api import instant_api_routes
from grader.exchange.service.instant.feature import InstantFeedback
from grader.exchange.service.instant.pages import page_routes
from grader.exchange.service.storage import ExchangeStore

DEFAULT_PREFIX = "/services/nbgrader-exchange/"
DEFAULT_MAX_UPLOAD_MB = 100


class StatusHandler(web.RequestHandler):
    """Unauthenticated: says the service is up (the hub and tests poll it), nothing more."""

    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"service": "nbgrader-exchange"}))


def make_app(*, root: Path, courses: list[str], max_upload_bytes: int, prefix: str = DEFAULT_PREFIX,
             hub_auth: HubAuth | None = None, instant: InstantFeedback | None = None) -> web.Application:
    """The tornado application; ``hub_auth`` defaults to the hub's environment for services."""
    hub_auth = hub_auth or HubAuth(cache_max_age=60)
    store = ExchangeStore(root)
    groups = GroupLookup(api_url=hub_auth.api_url, api_token=hub_auth.api_token)
    instant = instant or InstantFeedback()
    handler_args = {
        "store": store,
        "hub_auth": hub_auth,
        "groups": groups,
        "courses": frozenset(courses),
        "max_upload_bytes": max_upload_bytes,
        "instant": instant,
    }
    page_args = {"store": store, "groups": groups, "courses": frozenset(courses), "instant": instant}
    service_prefix = "/" + prefix.strip("/") + "/"
    prefix = "/" + prefix.strip("/")
    api = [(route, handler, handler_args) for route, handler in routes(prefix) + instant_api_routes(prefix)]
    # The course pages log people in through the hub (OAuth); the API takes tokens only.
    return web.Application(
        [(prefix + "/?", StatusHandler), (service_prefix + "oauth_callback", HubOAuthCallbackHandler)]
        + api + page_routes(service_prefix, page_args),
        service_prefix=service_prefix,
        # Signs the OAuth state cookie; a restart only asks people to log in to the service again.
        cookie_secret=secrets.token_bytes(32),
    )


def _course_dir(text: str) -> tuple[str, Path]:
    course_id, sep, course_dir = text.partition("=")
    if not sep or not course_id or not course_dir:
        raise argparse.ArgumentTypeError(f"--instant-feedback wants COURSE_ID=COURSE_DIR, got {text!r}")
    return course_id, Path(course_dir)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m grader.exchange.service", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="storage folder, written only by this service")
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--course", action="append", default=[], dest="courses", help="a course id (repeat)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                        help="largest upload, in MB of files (default: %(default)s)")
    parser.add_argument("--instant-feedback", type=_course_dir, action="append", default=[], dest="instant",
                        metavar="COURSE_ID=COURSE_DIR",
                        help="grade this course's submissions as they arrive, as its policy file says (repeat)")
    parser.add_argument("--instant-workers", type=int, default=2,
                        help="grading processes per course with instant feedback (default: %(default)s)")
    parser.add_argument("--lessons-dir", type=Path, default=None, help="the lessons the hub copies into homes")
    parser.add_argument("--homes-dir", type=Path, default=None,
                        help="the users' homes on this machine, for the lessons each student opened")
    parser.add_argument("--instant-batch-timeout", type=float, default=900.0,
                        help="seconds a grading process may take for one batch before it is killed (default: %(default)s)")
    args = parser.parse_args(argv)
    unknown = sorted({course for course, _ in args.instant} - set(args.courses))
    if unknown:
        parser.error(f"--instant-feedback names {unknown[0]!r}, which is not one of the --course ids")
    return args


async def serve(args: argparse.Namespace) -> None:
    max_upload_bytes = int(args.max_upload_mb * (1 << 20))
    instant = InstantFeedback.create(root=args.root, course_dirs=dict(args.instant), workers=args.instant_workers,
                                     batch_timeout=args.instant_batch_timeout, lessons_dir=args.lessons_dir,
                                     homes_dir=args.homes_dir)
    app = make_app(root=args.root, courses=args.courses, max_upload_bytes=max_upload_bytes,
                   prefix=os.environ.get("JUPYTERHUB_SERVICE_PREFIX", DEFAULT_PREFIX), instant=instant)
    instant.start()
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
    await instant.close()  # stops the grading workers; what they were grading is graded at the next start


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(asctime)s exchange] %(message)s")
    asyncio.run(serve(parse_args(argv)))
