"""The parser of ``grader-admin seats ...``; the handlers are in :mod:`grader.seats.commands`,
imported (with SQLAlchemy and Alembic) only when a command runs.

The database is the hub's, as ``grader-admin accounts`` finds its file: the handler is given
:func:`hub_seats_db`, which reads the hub's settings (the platform YAML) only when no ``--db`` and no
``$GRADER_SEATS_DB`` name one. (:mod:`grader.seats` sits below the hub and cannot import its settings.)"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from grader.cli.dispatch import lazy
from grader.seats.defaults import DEFAULT_PROFILES, DEFAULT_URL_NAME, URL_ENV

HELP = "enterprise cohorts: organisations, cohorts, seats, usage, invoices"
DESCRIPTION = f"""\
Enterprise cohorts: organisations buy seats in a cohort of a course and assign them.

Every command opens the hub's seats database: the one named by --db, else by ${URL_ENV}, else by
the hub's settings (seats.db_url of the platform YAML, else {DEFAULT_URL_NAME} in its data_dir),
migrating it if needed. A database that does not exist yet is an error naming it: the hub creates
it when it starts with seats.enabled, or "grader-admin seats init" does. A refused operation (no
seats left, a bad CSV row, an unknown cohort) prints "grader seats: <why>" and exits with 2;
nothing is half-applied.
"""
DB_HELP = (f"seats database URL, sqlite:///... or postgresql://... (default: ${URL_ENV}, else the hub's settings: "
           f"seats.db_url, else <data_dir>/{DEFAULT_URL_NAME})")


def hub_seats_db() -> tuple[str, str]:
    """The seats database URL of the hub's settings, and where it came from (for messages)."""
    from grader.hub.layers import ConfigError  # only when a command runs
    from grader.hub.settings import config_path, load_settings
    from grader.seats.db import NoSeatsDatabase

    try:
        settings = load_settings()
    except ConfigError as error:
        raise NoSeatsDatabase(f"cannot read the hub's settings, which name the seats database: {error}") from None
    where = "seats.db_url" if settings.seats.db_url else "data_dir"
    return settings.seats_db_url, f"{where} of the hub's settings, {config_path()}"


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def add_seats_command(verbs: argparse._SubParsersAction, *, listed: bool = True) -> None:
    seats = verbs.add_parser("seats", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                             **({"help": HELP} if listed else {}))
    seats.add_argument("--db", default=None, help=DB_HELP)
    # --db also after the subcommand; SUPPRESS keeps a value given before it.
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    commands = seats.add_subparsers(dest="seats_verb", required=True, metavar="COMMAND")
    run = lazy("grader.seats.commands:run")

    def command(parent, name: str, help_text: str, key: str | None = None) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, help=help_text, description=help_text, parents=[db])
        # grader.seats.commands.COMMANDS maps the key to the operation.
        parser.set_defaults(handler=run, seats_command=key or name, hub_seats_db=hub_seats_db)
        return parser

    command(commands, "init", "create the seats database the hub's settings name (or migrate it), and say where")

    org = commands.add_parser("org", help="organisations that buy seats")
    org_verbs = org.add_subparsers(dest="org_verb", required=True, metavar="COMMAND")
    add = command(org_verbs, "add", "add an organisation", "org add")
    add.add_argument("name")
    add.add_argument("--contact", required=True, help="e-mail address learners are told to ask")
    add.add_argument("--admin", action="append", default=[], help="hub user who administers its cohorts (repeatable)")
    admin = command(org_verbs, "admin", "make a hub user a cohort admin of an organisation", "org admin")
    admin.add_argument("organisation", help="name or id")
    admin.add_argument("username")
    command(org_verbs, "list", "list the organisations", "org list")

    cohort = commands.add_parser("cohort", help="cohorts: seats in a course for a period")
    cohort_verbs = cohort.add_subparsers(dest="cohort_verb", required=True, metavar="COMMAND")
    add = command(cohort_verbs, "add", "add a cohort to an organisation", "cohort add")
    add.add_argument("organisation", help="name or id")
    add.add_argument("name")
    add.add_argument("--course", required=True, help="course id on the hub")
    add.add_argument("--starts", type=_iso_date, required=True, help="first day, YYYY-MM-DD")
    add.add_argument("--ends", type=_iso_date, required=True, help="last day (inclusive), YYYY-MM-DD")
    add.add_argument("--seats", type=int, required=True, help="seats bought")
    add.add_argument("--profile", action="append", default=None,
                     help=f"server profile slug included, e.g. gpu (repeatable; default: {', '.join(DEFAULT_PROFILES)})")
    listing = command(cohort_verbs, "list", "list an organisation's cohorts with seats left", "cohort list")
    listing.add_argument("organisation", help="name or id")

    assign = command(commands, "assign", "give a seat to a user (active) or an e-mail address (invited)")
    assign.add_argument("cohort", type=int, help="cohort id")
    holder = assign.add_mutually_exclusive_group(required=True)
    holder.add_argument("--user", help="hub user name")
    holder.add_argument("--email", help="address to invite; the seat is claimed at the user's first login")
    revoke = command(commands, "revoke", "take a seat back (frees it)")
    revoke.add_argument("seat", type=int, help="seat id (see: grader-admin seats list)")
    bulk = command(commands, "import", "assign seats from a CSV file (columns username and/or email), all or none")
    bulk.add_argument("cohort", type=int, help="cohort id")
    bulk.add_argument("file", type=Path)
    listing = command(commands, "list", "list a cohort's seats")
    listing.add_argument("cohort", type=int, help="cohort id")
    usage = command(commands, "usage", "per learner: seat state, server hours, GPU hours")
    usage.add_argument("cohort", type=int, help="cohort id")
    usage.add_argument("--csv", nargs="?", const="-", default=None, metavar="FILE",
                       help="write CSV to FILE (no FILE: to standard output)")
    invoice = command(commands, "invoice", "an organisation's invoice lines for a month: seat-days, GPU hours")
    invoice.add_argument("organisation", help="name or id")
    invoice.add_argument("--month", required=True, help="YYYY-MM")
    invoice.add_argument("--csv", nargs="?", const="-", default=None, metavar="FILE",
                         help="write CSV to FILE (no FILE: to standard output)")
    access = command(commands, "access", "may this user use the hub (exit 0) or not (exit 1), and why")
    access.add_argument("username")
    access.add_argument("--on", type=_iso_date, default=None, help="day to check, YYYY-MM-DD (default: today)")
