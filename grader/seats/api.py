"""The seats service's REST API under ``/services/seats/api/``, documented in ``openapi.yaml``.

JSON in and out (CSV for the import body and the exports); errors are ``{"status", "message"}``
(plus ``"errors"``, one per bad line, for a refused CSV import). Every handler opens one
database session for the request; the store's functions run the transactions.
"""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import asdict
from datetime import date
from pathlib import Path

from tornado import web

from grader.seats.csv_import import CsvImportError, bulk_assign
from grader.seats.handlers import SEATS_READ, SEATS_WRITE, SeatsBaseHandler, parse_id
from grader.seats.learner_progress import learner_progress
from grader.seats.models import Cohort, Organisation, Seat
from grader.seats.store import (
    NoSeatsLeft,
    NotFound,
    SeatsError,
    assign_seat,
    cohorts_of,
    record_lesson_run,
    revoke_seat,
    seats_left,
    seats_of,
)
from grader.seats.usage_reports import cohort_usage, invoice_lines, write_invoice_csv, write_usage_csv

log = logging.getLogger("grader.seats.service")
OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
# A CSV import larger than this is refused before it is parsed (a cohort is not that big).
MAX_CSV_BYTES = 1 << 20


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def organisation_json(organisation: Organisation) -> dict:
    return {"id": organisation.id, "name": organisation.name, "contact_email": organisation.contact_email}


def cohort_json(session, cohort: Cohort, *, today: date) -> dict:
    left = seats_left(session, cohort_id=cohort.id)
    return {
        "id": cohort.id, "organisation_id": cohort.organisation_id, "name": cohort.name,
        "course_id": cohort.course_id, "starts_on": cohort.starts_on.isoformat(),
        "ends_on": cohort.ends_on.isoformat(), "seat_limit": cohort.seat_limit,
        "profiles": list(cohort.profiles), "seats_used": cohort.seat_limit - left, "seats_left": left,
        "open": cohort.is_open(today),
    }


def seat_json(seat: Seat) -> dict:
    return {"id": seat.id, "cohort_id": seat.cohort_id, "username": seat.username, "email": seat.email,
            "state": seat.state, "invited_at": _iso(seat.invited_at), "activated_at": _iso(seat.activated_at),
            "revoked_at": _iso(seat.revoked_at)}


def parse_month(text: str | None) -> str:
    """A ``YYYY-MM`` month; 400 naming the problem otherwise."""
    if not MONTH.match(text or "") or text.startswith("0000"):
        raise web.HTTPError(400, f"month must be YYYY-MM, e.g. 2026-03 (got {text!r})")
    return text


def usage_rows(context, session, cohort: Cohort) -> list:
    """The cohort's usage report rows, with each learner's progress in the cohort's course."""
    progress = learner_progress(session, usernames=[s.username for s in seats_of(session, cohort_id=cohort.id)
                                                    if s.username],
                                course_id=cohort.course_id, course_dir=context.course_dirs.get(cohort.course_id))
    return cohort_usage(session, cohort_id=cohort.id, progress=progress)


class ApiHandler(SeatsBaseHandler):
    """JSON errors, never a redirect to the login page."""

    def get_login_url(self):
        raise web.HTTPError(403, "send a hub API token (Authorization: token ...) or log in through the hub")

    def write_error(self, status_code: int, **kwargs) -> None:
        exception = kwargs.get("exc_info", (None, None))[1]
        message = (exception.log_message if isinstance(exception, web.HTTPError) and exception.log_message
                   else self._reason)
        body = {"status": status_code, "message": message}
        body.update(getattr(exception, "extra", {}))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError) as error:
            raise web.HTTPError(400, f"the body is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return body

    def send_json(self, value, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value))

    def send_csv(self, text: str, filename: str) -> None:
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.finish(text)


def store_error(error: SeatsError) -> web.HTTPError:
    """The HTTP answer to a refused store operation."""
    status = 404 if isinstance(error, NotFound) else 409 if isinstance(error, NoSeatsLeft) else 400
    return web.HTTPError(status, str(error))


class OpenApiHandler(web.RequestHandler):
    """The API's description; public, like the hub's own REST API documentation."""

    def get(self):
        self.set_header("Content-Type", "application/yaml; charset=utf-8")
        self.finish(OPENAPI_PATH.read_text())


class OrganisationsHandler(ApiHandler):
    def get(self):
        user = self.require(SEATS_READ)
        with self.context.sessions() as session:
            self.send_json([organisation_json(o) for o in self.visible_organisations(session, user)])


class OrganisationCohortsHandler(ApiHandler):
    def get(self, organisation_id: str):
        user = self.require(SEATS_READ)
        with self.context.sessions() as session:
            organisation = self.organisation_or_404(session, user, parse_id(organisation_id))
            today = self.context.today()
            self.send_json([cohort_json(session, c, today=today)
                            for c in cohorts_of(session, organisation_id=organisation.id)])


class CohortHandler(ApiHandler):
    def get(self, cohort_id: str):
        user = self.require(SEATS_READ)
        with self.context.sessions() as session:
            cohort = self.cohort_or_404(session, user, parse_id(cohort_id))
            self.send_json(cohort_json(session, cohort, today=self.context.today()))


class CohortSeatsHandler(ApiHandler):
    def get(self, cohort_id: str):
        user = self.require(SEATS_READ)
        with self.context.sessions() as session:
            cohort = self.cohort_or_404(session, user, parse_id(cohort_id))
            self.send_json([seat_json(s) for s in seats_of(session, cohort_id=cohort.id)])

    def post(self, cohort_id: str):
        user = self.require(SEATS_WRITE)
        body = self.json_body()
        unknown = set(body) - {"username", "email"}
        if unknown:
            raise web.HTTPError(400, f"unknown field(s): {', '.join(sorted(unknown))}; give username or email")
        holder = {key: body.get(key) for key in ("username", "email")}
        if not all(value is None or isinstance(value, str) for value in holder.values()):
            raise web.HTTPError(400, "username and email must be strings")
        with self.context.sessions() as session:
            cohort = self.cohort_or_404(session, user, parse_id(cohort_id))
            try:
                seat = assign_seat(session, cohort_id=cohort.id, **holder)
            except SeatsError as error:
                raise store_error(error) from error
            log.info("seats: %s assigned seat %s in cohort %s", user["name"], seat.id, cohort.id)
            self.send_json(seat_json(seat), status=201)


class SeatRevokeHandler(ApiHandler):
    def post(self, seat_id: str):
        user = self.require(SEATS_WRITE)
        with self.context.sessions() as session:
            seat = self.seat_or_404(session, user, parse_id(seat_id))
            try:
                seat = revoke_seat(session, seat_id=seat.id)
            except SeatsError as error:
                raise store_error(error) from error
            log.info("seats: %s revoked seat %s", user["name"], seat.id)
            self.send_json(seat_json(seat))


class CsvImportFailed(web.HTTPError):
    """A refused import: 400, with every bad line in the body's ``errors``."""

    def __init__(self, error: CsvImportError):
        super().__init__(400, "nothing was assigned: the CSV has errors")
        self.extra = {"errors": list(error.problems)}


def decode_csv(body: bytes) -> str:
    if len(body) > MAX_CSV_BYTES:
        raise web.HTTPError(413, f"the CSV is larger than {MAX_CSV_BYTES} bytes")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise web.HTTPError(400, f"the CSV is not UTF-8 text: {error}") from error


class CohortImportHandler(ApiHandler):
    def post(self, cohort_id: str):
        user = self.require(SEATS_WRITE)
        text = decode_csv(self.request.body)
        with self.context.sessions() as session:
            cohort = self.cohort_or_404(session, user, parse_id(cohort_id))
            try:
                seats = bulk_assign(session, cohort_id=cohort.id, csv_text=text, source="upload.csv")
            except CsvImportError as error:
                raise CsvImportFailed(error) from error
            except SeatsError as error:
                raise store_error(error) from error
            log.info("seats: %s imported %d seats into cohort %s", user["name"], len(seats), cohort.id)
            self.send_json({"assigned": len(seats), "seats": [seat_json(s) for s in seats]}, status=201)


class CohortUsageHandler(ApiHandler):
    def get(self, cohort_id: str, extension: str | None = None):
        user = self.require(SEATS_READ)
        with self.context.sessions() as session:
            cohort = self.cohort_or_404(session, user, parse_id(cohort_id))
            rows = usage_rows(self.context, session, cohort)
        if extension == ".csv":
            out = io.StringIO()
            write_usage_csv(rows, out)
            self.send_csv(out.getvalue(), f"cohort-{cohort.id}-usage.csv")
        else:
            self.send_json([row_json(row) for row in rows])


class InvoiceHandler(ApiHandler):
    def get(self, organisation_id: str, extension: str | None = None):
        user = self.require(SEATS_READ)
        month = parse_month(self.get_query_argument("month", None))
        with self.context.sessions() as session:
            organisation = self.organisation_or_404(session, user, parse_id(organisation_id))
            lines = invoice_lines(session, organisation_id=organisation.id, month=month)
        if extension == ".csv":
            out = io.StringIO()
            write_invoice_csv(lines, out)
            self.send_csv(out.getvalue(), f"invoice-{organisation.id}-{month}.csv")
        else:
            self.send_json([row_json(line) for line in lines])


class LessonRunsHandler(ApiHandler):
    """``POST /api/lesson-runs {"lesson": "<path under ~/courses>"}``: the caller ran that lesson.

    Sent by each learner's own server (:mod:`grader.seats.lesson_reports`) with its hub token, which
    may call this service (``access:services!service=seats``, the ``seats-learner`` role); it can
    only ever report its own user's lessons. No custom scope is needed: it reads nothing."""

    def post(self):
        user = self.user_or_fail()
        body = self.json_body()
        unknown = set(body) - {"lesson"}
        if unknown or "lesson" not in body:
            raise web.HTTPError(400, "give exactly one field, lesson: the notebook's path under ~/courses")
        with self.context.sessions() as session:
            try:
                run = record_lesson_run(session, username=user["name"], lesson=body["lesson"])
            except SeatsError as error:
                raise store_error(error) from error
        self.send_json({"username": run.username, "lesson": run.lesson, "first_run_at": _iso(run.first_run_at),
                        "last_run_at": _iso(run.last_run_at)})


def row_json(row) -> dict:
    """A report row (a dataclass) as JSON: dates as ISO text, floats rounded for people."""
    out = {}
    for key, value in asdict(row).items():
        if isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, float):
            value = round(value, 4)
        out[key] = value
    return out


def api_routes(prefix: str, context) -> list:
    api = prefix + "api/"
    ident = r"(\d{1,12})"
    return [
        (api + "openapi.yaml", OpenApiHandler),
        (api + "organisations", OrganisationsHandler, {"context": context}),
        (api + f"organisations/{ident}/cohorts", OrganisationCohortsHandler, {"context": context}),
        (api + f"organisations/{ident}/invoice(\\.csv)?", InvoiceHandler, {"context": context}),
        (api + f"cohorts/{ident}", CohortHandler, {"context": context}),
        (api + f"cohorts/{ident}/seats", CohortSeatsHandler, {"context": context}),
        (api + f"cohorts/{ident}/seats/import", CohortImportHandler, {"context": context}),
        (api + f"cohorts/{ident}/usage(\\.csv)?", CohortUsageHandler, {"context": context}),
        (api + f"seats/{ident}/revoke", SeatRevokeHandler, {"context": context}),
        (api + "lesson-runs", LessonRunsHandler, {"context": context}),
    ]
