"""``grader-admin seats ...``: the handlers of the seats operations, a thin layer over :mod:`grader.seats.store`.

The parser lives in :mod:`grader.cli.seats_parser` (building it imports nothing heavy); it names
the operation in ``args.seats_command`` and :func:`run` carries it out. Every operation opens the
hub's seats database: the one named by ``--db``, else by ``$GRADER_SEATS_DB``, else by the hub's
settings (``args.hub_seats_db``, given by the parser), migrating it if needed. A database that does
not exist is an error naming it (``init`` creates it), never a new empty file wherever the command
ran. A refused operation (no seats left, a bad CSV row, an unknown cohort) prints
``grader seats: <why>`` and exits with 2; nothing is half-applied.

The clock is read once per command (``args.now``): a command that runs across midnight UTC gives
all its seats, and reports all its usage, as of the same moment.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from grader.seats import store, usage_reports
from grader.seats.csv_import import bulk_assign
from grader.seats.db import NoSeatsDatabase, close_seats_db, environment_url, open_seats_db
from grader.seats.defaults import DEFAULT_PROFILES, URL_ENV


def _table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers, *([("" if v is None else str(v)) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in cells)


def _printable_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def database_url(args: argparse.Namespace, environ=os.environ) -> tuple[str, str]:
    """The seats database this command opens, and where that came from (named in errors)."""
    if args.db:
        return args.db, "--db"
    if environment_url(environ):
        return environment_url(environ), f"${URL_ENV}"
    return args.hub_seats_db()


def _with_db(command: Callable[[Session, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Open the database, run ``command`` in a session, report SeatsError."""

    def handler(args: argparse.Namespace) -> int:
        try:
            url, source = database_url(args)
        except NoSeatsDatabase as error:  # the hub's settings: a missing or bad YAML, named
            print(f"grader seats: {error}; or name the database with --db", file=sys.stderr)
            return 2
        create = args.seats_command == "init"
        try:
            factory = open_seats_db(url, create=create)
        except NoSeatsDatabase as error:
            print(f"grader seats: {error} (from {source}); the hub creates it when it starts with seats.enabled, "
                  "or run 'grader-admin seats init'; or name another with --db", file=sys.stderr)
            return 2
        except (SQLAlchemyError, ValueError, OSError) as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            print(f"grader seats: cannot open the seats database {_printable_url(url)} (from {source}): {reason}",
                  file=sys.stderr)
            return 2
        if create:
            print(f"seats database ready: {_printable_url(url)} (from {source})")
            close_seats_db(factory)
            return 0
        args.now = store.moment(None)
        try:
            with factory() as session:
                return command(session, args)
        except store.SeatsError as error:
            print(f"grader seats: {error}", file=sys.stderr)
            return 2
        finally:
            close_seats_db(factory)

    return handler


def _org_add(session: Session, args: argparse.Namespace) -> int:
    organisation = store.create_organisation(session, name=args.name, contact_email=args.contact)
    for username in args.admin:
        store.add_org_admin(session, organisation_id=organisation.id, username=username)
    admins = f"; cohort admins: {', '.join(args.admin)}" if args.admin else ""
    print(f"added organisation {organisation.name} (id {organisation.id}), contact {organisation.contact_email}{admins}")
    return 0


def _org_admin(session: Session, args: argparse.Namespace) -> int:
    organisation = store.find_organisation(session, name=args.organisation)
    store.add_org_admin(session, organisation_id=organisation.id, username=args.username)
    print(f"{args.username} administers the cohorts of {organisation.name}")
    return 0


def _org_list(session: Session, args: argparse.Namespace) -> int:
    rows = [[o.id, o.name, o.contact_email, len(store.cohorts_of(session, organisation_id=o.id))]
            for o in store.organisations(session)]
    print(_table(["id", "organisation", "contact", "cohorts"], rows))
    return 0


def _cohort_add(session: Session, args: argparse.Namespace) -> int:
    organisation = store.find_organisation(session, name=args.organisation)
    cohort = store.create_cohort(session, organisation_id=organisation.id, name=args.name, course_id=args.course,
                                 starts_on=args.starts, ends_on=args.ends, seat_limit=args.seats,
                                 profiles=args.profile or DEFAULT_PROFILES)
    print(f"added cohort {cohort.name} (id {cohort.id}) of {organisation.name}: course {cohort.course_id}, "
          f"{cohort.starts_on} to {cohort.ends_on}, {cohort.seat_limit} seats, profiles {', '.join(cohort.profiles)}")
    return 0


def _cohort_list(session: Session, args: argparse.Namespace) -> int:
    organisation = store.find_organisation(session, name=args.organisation)
    rows = [[c.id, c.name, c.course_id, c.starts_on, c.ends_on, c.seat_limit,
             store.seats_left(session, cohort_id=c.id), ",".join(c.profiles)]
            for c in store.cohorts_of(session, organisation_id=organisation.id)]
    print(_table(["id", "cohort", "course", "starts", "ends", "seats", "left", "profiles"], rows))
    return 0


def _assign(session: Session, args: argparse.Namespace) -> int:
    seat = store.assign_seat(session, cohort_id=args.cohort, username=args.user, email=args.email, now=args.now)
    left = store.seats_left(session, cohort_id=args.cohort)
    print(f"seat {seat.id}: {seat.username or seat.email} {seat.state} in cohort {seat.cohort.name} ({left} left)")
    return 0


def _revoke(session: Session, args: argparse.Namespace) -> int:
    seat = store.revoke_seat(session, seat_id=args.seat, now=args.now)
    left = store.seats_left(session, cohort_id=seat.cohort_id)
    print(f"revoked seat {seat.id} ({seat.username or seat.email}) in cohort {seat.cohort.name} ({left} left)")
    return 0


def _import(session: Session, args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise store.SeatsError(f"{args.file}: cannot read it: {error}") from None
    seats = bulk_assign(session, cohort_id=args.cohort, csv_text=text, source=str(args.file), now=args.now)
    left = store.seats_left(session, cohort_id=args.cohort)
    invited = sum(seat.state == "invited" for seat in seats)
    print(f"assigned {len(seats)} seat(s) from {args.file} ({invited} invitation(s)); {left} left")
    return 0


def _list(session: Session, args: argparse.Namespace) -> int:
    cohort = store.get_cohort(session, cohort_id=args.cohort)
    rows = [[s.id, s.username or "", s.email or "", s.state, f"{(s.revoked_at or s.activated_at or s.invited_at):%Y-%m-%d}"]
            for s in store.seats_of(session, cohort_id=cohort.id)]
    print(_table(["seat", "user", "email", "state", "since"], rows))
    print(f"{cohort.name}: {store.seats_left(session, cohort_id=cohort.id)} of {cohort.seat_limit} seats left")
    return 0


def _write_csv(target: str, write) -> None:
    if target == "-":
        write(sys.stdout)
        return
    with open(target, "w", newline="", encoding="utf-8") as file:
        write(file)
    print(f"wrote {target}")


def _usage(session: Session, args: argparse.Namespace) -> int:
    rows = usage_reports.cohort_usage(session, cohort_id=args.cohort, progress=usage_reports.recorded_progress(
        session, cohort_id=args.cohort), now=args.now)
    if args.csv is not None:
        _write_csv(args.csv, lambda file: usage_reports.write_usage_csv(rows, file))
        return 0
    print(_table(["user", "email", "state", "server h", "GPU h"],
                 [[r.username, r.email, r.state, f"{r.server_hours:.2f}", f"{r.gpu_hours:.2f}"] for r in rows]))
    summary = usage_reports.summarise(rows)
    print(f"{summary.active_learners} active learner(s), {summary.server_hours:.2f} server hours, "
          f"{summary.gpu_hours:.2f} GPU hours")
    return 0


def _invoice(session: Session, args: argparse.Namespace) -> int:
    organisation = store.find_organisation(session, name=args.organisation)
    lines = usage_reports.invoice_lines(session, organisation_id=organisation.id, month=args.month, now=args.now)
    if args.csv is not None:
        _write_csv(args.csv, lambda file: usage_reports.write_invoice_csv(lines, file))
        return 0
    print(_table(["cohort", "course", "seat-days", "GPU h", "server h"],
                 [[f"{l.cohort} ({l.cohort_id})", l.course_id, l.seat_days, f"{l.gpu_hours:.2f}",
                   f"{l.server_hours:.2f}"] for l in lines]))
    return 0


def _access(session: Session, args: argparse.Namespace) -> int:
    access = store.access_for(session, username=args.username, today=args.on or args.now.date())
    if access.allowed:
        print(f"{args.username}: allowed, profiles {', '.join(sorted(access.profiles))}, "
              f"cohorts {', '.join(map(str, access.cohort_ids))}")
        return 0
    print(f"{args.username}: refused ({access.code}): {access.reason}")
    return 1


# The operations by the name the parser gives them in ``args.seats_command``.
COMMANDS: dict[str, Callable[[Session, argparse.Namespace], int]] = {
    "init": lambda session, args: 0,  # opening it (creating, migrating) is all
    "org add": _org_add,
    "org admin": _org_admin,
    "org list": _org_list,
    "cohort add": _cohort_add,
    "cohort list": _cohort_list,
    "assign": _assign,
    "revoke": _revoke,
    "import": _import,
    "list": _list,
    "usage": _usage,
    "invoice": _invoice,
    "access": _access,
}


def run(args: argparse.Namespace) -> int:
    """Carry out the seats operation the parser chose, in a session of the seats database."""
    return _with_db(COMMANDS[args.seats_command])(args)
