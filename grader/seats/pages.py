"""The seats service's pages for a cohort admin, under ``/services/seats/``.

Plain HTML forms, no script: the organisations and their cohorts; a cohort's seats with assign
(by user name or e-mail), revoke, and CSV import (a refused file lists every bad line and assigns
nothing); the usage and progress report with its chart. A successful change redirects back to
the cohort page (so reloading it changes nothing twice); a refused one shows the page again with
the reason and an error status.
"""

from __future__ import annotations

import logging

from tornado import web

from grader.seats.api import cohort_json, decode_csv, usage_rows
from grader.seats.chart import usage_chart_svg
from grader.seats.csv_import import CsvImportError, bulk_assign
from grader.seats.handlers import SEATS_READ, SEATS_WRITE, SeatsBaseHandler, parse_id
from grader.seats.models import Seat
from grader.seats.store import NoSeatsLeft, NotFound, SeatsError, assign_seat, cohorts_of, revoke_seat, seats_of
from grader.seats.usage_reports import summarise

log = logging.getLogger("grader.seats.service")


class PageHandler(SeatsBaseHandler):
    def get_template_namespace(self) -> dict:
        namespace = super().get_template_namespace()
        namespace.update(prefix=self.context.prefix, hub_prefix=self.context.hub_prefix)
        return namespace

    def write_error(self, status_code: int, **kwargs) -> None:
        exception = kwargs.get("exc_info", (None, None))[1]
        message = exception.log_message if isinstance(exception, web.HTTPError) else ""
        self.render("error.html", status_code=status_code, status_message=self._reason, message=message or "")

    def can_write(self, user: dict) -> bool:
        return SEATS_WRITE in set(user.get("scopes", ()))

    def render_cohort(self, session, user: dict, cohort, *, notice: str = "", errors=(), error_title: str = "",
                      status: int = 200) -> None:
        self.set_status(status)
        seats = seats_of(session, cohort_id=cohort.id)
        # Live seats first, then the revoked ones as history.
        seats.sort(key=lambda s: (s.state == "revoked", s.id))
        self.render("cohort.html", user=user, organisation=cohort.organisation,
                    cohort=cohort_json(session, cohort, today=self.context.today()), seats=seats, notice=notice,
                    errors=list(errors), error_title=error_title, can_write=self.can_write(user))


class IndexPage(PageHandler):
    @web.authenticated
    def get(self):
        user = self.require(SEATS_READ)
        today = self.context.today()
        with self.context.sessions() as session:
            organisations = [(o, [cohort_json(session, c, today=today) for c in cohorts_of(session, organisation_id=o.id)])
                             for o in self.visible_organisations(session, user)]
            self.render("index.html", user=user, organisations=organisations, this_month=f"{today:%Y-%m}")


def _notice(session, done: str | None, seat_id: str | None, count: str | None) -> str:
    """The line shown after a change, rebuilt from the database (never from the URL's text)."""
    if done in ("assigned", "revoked") and seat_id and seat_id.isdigit() and len(seat_id) < 12:
        seat = session.get(Seat, int(seat_id))
        if seat is not None:
            who = seat.username or seat.email
            return f"Seat {seat.id} assigned to {who} ({seat.state})." if done == "assigned" else \
                f"Seat {seat.id} of {who} revoked."
    if done == "imported" and count and count.isdigit() and len(count) < 7:
        return f"Imported {int(count)} seat(s) from the CSV file."
    return ""


class CohortPage(PageHandler):
    @web.authenticated
    def get(self, cohort_id: str):
        user = self.require(SEATS_READ)
        with self.context.sessions() as session:
            cohort = self.cohort_or_404(session, user, parse_id(cohort_id))
            notice = _notice(session, self.get_query_argument("done", None), self.get_query_argument("seat", None),
                             self.get_query_argument("count", None))
            self.render_cohort(session, user, cohort, notice=notice)


def _status_of(error: SeatsError) -> int:
    return 404 if isinstance(error, NotFound) else 409 if isinstance(error, NoSeatsLeft) else 400


class AssignAction(PageHandler):
    @web.authenticated
    def post(self, cohort_id: str):
        user = self.require(SEATS_WRITE)
        who = self.get_body_argument("who", "").strip()
        with self.context.sessions() as session:
            cohort = self.cohort_or_404(session, user, parse_id(cohort_id))
            if not who:
                return self.render_cohort(session, user, cohort, errors=["Give a user name or an e-mail address."],
                                          error_title="Nothing was assigned.", status=400)
            holder = {"email": who} if "@" in who else {"username": who}
            try:
                seat = assign_seat(session, cohort_id=cohort.id, **holder)
            except SeatsError as error:
                return self.render_cohort(session, user, cohort, errors=[str(error)],
                                          error_title="Nothing was assigned.", status=_status_of(error))
            log.info("seats: %s assigned seat %s in cohort %s", user["name"], seat.id, cohort.id)
        self.redirect(f"{self.context.prefix}cohorts/{cohort.id}?done=assigned&seat={seat.id}", status=303)


class RevokeAction(PageHandler):
    @web.authenticated
    def post(self, cohort_id: str, seat_id: str):
        user = self.require(SEATS_WRITE)
        with self.context.sessions() as session:
            cohort = self.cohort_or_404(session, user, parse_id(cohort_id))
            seat = self.seat_or_404(session, user, parse_id(seat_id), cohort_id=cohort.id)
            try:
                revoke_seat(session, seat_id=seat.id)
            except SeatsError as error:
                return self.render_cohort(session, user, cohort, errors=[str(error)],
                                          error_title="Nothing was revoked.", status=_status_of(error))
            log.info("seats: %s revoked seat %s", user["name"], seat.id)
        self.redirect(f"{self.context.prefix}cohorts/{cohort.id}?done=revoked&seat={seat.id}", status=303)


class ImportAction(PageHandler):
    @web.authenticated
    def post(self, cohort_id: str):
        user = self.require(SEATS_WRITE)
        files = self.request.files.get("csv_file") or []
        with self.context.sessions() as session:
            cohort = self.cohort_or_404(session, user, parse_id(cohort_id))
            if not files:
                return self.render_cohort(session, user, cohort, errors=["Choose a CSV file to import."],
                                          error_title="Nothing was assigned.", status=400)
            upload = files[0]
            # The file's own name in every error line, as the admin knows it.
            source = (upload.filename or "upload.csv").replace("\\", "/").rsplit("/", 1)[-1]
            try:
                seats = bulk_assign(session, cohort_id=cohort.id, csv_text=decode_csv(upload.body), source=source)
            except CsvImportError as error:
                return self.render_cohort(session, user, cohort, errors=error.problems, status=400,
                                          error_title=f"Nothing was assigned: {source} has "
                                                      f"{len(error.problems)} problem(s).")
            except SeatsError as error:
                return self.render_cohort(session, user, cohort, errors=[str(error)],
                                          error_title="Nothing was assigned.", status=_status_of(error))
            except web.HTTPError as error:  # not UTF-8, or too large
                return self.render_cohort(session, user, cohort, errors=[error.log_message],
                                          error_title="Nothing was assigned.", status=error.status_code)
            log.info("seats: %s imported %d seats into cohort %s", user["name"], len(seats), cohort.id)
        self.redirect(f"{self.context.prefix}cohorts/{cohort.id}?done=imported&count={len(seats)}", status=303)


class ReportPage(PageHandler):
    @web.authenticated
    def get(self, cohort_id: str):
        user = self.require(SEATS_READ)
        with self.context.sessions() as session:
            cohort = self.cohort_or_404(session, user, parse_id(cohort_id))
            rows = usage_rows(self.context, session, cohort)
            assignments = sorted({name for row in rows for name in row.scores})
            self.render("report.html", user=user, organisation=cohort.organisation,
                        cohort=cohort_json(session, cohort, today=self.context.today()), rows=rows,
                        summary=summarise(rows), chart=usage_chart_svg(rows), assignments=assignments)


def page_routes(prefix: str, context) -> list:
    ident = r"(\d{1,12})"
    kwargs = {"context": context}
    return [
        (prefix, IndexPage, kwargs),
        (prefix + f"cohorts/{ident}", CohortPage, kwargs),
        (prefix + f"cohorts/{ident}/assign", AssignAction, kwargs),
        (prefix + f"cohorts/{ident}/import", ImportAction, kwargs),
        (prefix + f"cohorts/{ident}/seats/{ident}/revoke", RevokeAction, kwargs),
        (prefix + f"cohorts/{ident}/report", ReportPage, kwargs),
    ]
