"""The parser of ``grader-admin accounts ...``; its handler is
:func:`grader.hub.auth.signup.accounts_command`, imported (with JupyterHub) only when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from grader.cli.dispatch import lazy

# grader.hub.auth.signup.INVITATION_HOURS, stated here so that --help does not import JupyterHub;
# tests/cli/test_defaults.py checks they agree.
INVITATION_HOURS = 72
HELP = "local accounts: approve sign-ups, make invitation and password reset links, unlock names"


def add_accounts_command(verbs: argparse._SubParsersAction, *, listed: bool = True) -> None:
    accounts = verbs.add_parser("accounts", description=HELP, **({"help": HELP} if listed else {}))
    accounts.add_argument("--accounts-db", type=Path, default=None,
                          help="accounts SQLite file (default: <data_dir>/accounts.sqlite of the hub's settings)")
    accounts_verbs = accounts.add_subparsers(dest="accounts_verb", required=True, metavar="COMMAND")
    accounts_verbs.add_parser("pending", help="list sign-ups waiting for approval")
    for name, help_text in [("approve", "let a pending sign-up log in"), ("reject", "delete a pending sign-up")]:
        accounts_verbs.add_parser(name, help=help_text).add_argument("username")
    invite = accounts_verbs.add_parser("invite", help="print a one-time sign-up link")
    invite.add_argument("--hours", type=float, default=INVITATION_HOURS, help="how long it stays valid (default: %(default)s)")
    invite.add_argument("--note", default="", help="who it is for (kept with the invitation)")
    invite.add_argument("--hub-url", default=None, help="the hub's public address (default: from the hub's settings)")
    reset = accounts_verbs.add_parser("reset", help="print a one-time link that sets USERNAME's password")
    reset.add_argument("username")
    reset.add_argument("--hours", type=float, default=None,
                       help="how long it stays valid (default: accounts.reset_hours of the hub's settings)")
    reset.add_argument("--hub-url", default=None, help="the hub's public address (default: from the hub's settings)")
    accounts_verbs.add_parser("unlock", help="clear a name's failed logins and lock").add_argument("username")
    accounts_verbs.add_parser("locked", help="list the names locked after too many failed logins")
    accounts.set_defaults(handler=lazy("grader.hub.auth.signup:accounts_command"))
