"""``grader-admin``: the command line of whoever runs the hub: courses, the TLS front, local
accounts, enterprise seats and the Kubernetes values.

Builds the parser only; the handlers import the hub or seats code when they run (see
:mod:`grader.cli.dispatch`). :func:`add_admin_commands` also registers these commands, unlisted,
on ``grader`` so that ``grader seats ...`` and friends keep working.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from grader.cli.accounts_parser import add_accounts_command
from grader.cli.dispatch import lazy, run
from grader.cli.seats_parser import add_seats_command

DESCRIPTION = "grader-admin: run the hub: courses, the TLS front, local accounts, enterprise seats, Kubernetes."
K8S_HELP = "Kubernetes (Zero-to-JupyterHub): values (chart values from the platform settings), image-tag"


def _command(verbs: argparse._SubParsersAction, name: str, help_text: str, listed: bool,
             **kwargs) -> argparse.ArgumentParser:
    # An unlisted command parses and runs the same; it is only left out of the help.
    return verbs.add_parser(name, description=help_text, **({"help": help_text} if listed else {}), **kwargs)


def add_admin_commands(verbs: argparse._SubParsersAction, *, listed: bool = True) -> None:
    """Register course, hub, accounts and seats on ``verbs`` (listed in its help or not)."""
    course = _command(verbs, "course", "manage the hub's courses (edits the platform YAML)", listed)
    course_verbs = course.add_subparsers(dest="course_verb", required=True, metavar="COMMAND")
    add = course_verbs.add_parser("add", help="add a course with its own course directory, formgrader and exchange folder")
    add.add_argument("course_id")
    add.add_argument("--instructor", action="append", required=True, help="instructor account (repeatable)")
    # Defaults as grader.hub.course_add.add_course states them (tests/cli/test_defaults.py checks).
    add.add_argument("--grader", action="append", default=[], help="grader account: opens the formgrader only (repeatable)")
    add.add_argument("--student", action="append", default=[], help="student account (repeatable)")
    add.add_argument("--title", default="", help="the course's name as people read it")
    add.add_argument("--port", type=int, default=None,
                     help="loopback port of its formgrader (default: the next after the highest course port)")
    add.add_argument("--config", type=Path, default=None,
                     help="platform YAML to edit (default: $AICOURSE_CONFIG or hub_config/platform.yaml)")
    add.set_defaults(handler=lazy("grader.cli.hub_commands:course_add"))

    hub = _command(verbs, "hub", "the hub's own set-up, as the platform YAML describes it", listed)
    hub_verbs = hub.add_subparsers(dest="hub_verb", required=True, metavar="COMMAND")
    hub_verbs.add_parser("caddyfile", help="print the Caddyfile of the TLS front (https: in the platform YAML) "
                         "that the hub writes and runs").set_defaults(handler=lazy("grader.cli.hub_commands:hub_caddyfile"))

    add_accounts_command(verbs, listed=listed)
    add_seats_command(verbs, listed=listed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grader-admin", description=DESCRIPTION)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND", title="commands")
    add_admin_commands(verbs)
    # Listed for the help; main() hands "k8s ..." to the values module's own parser (see there).
    k8s = verbs.add_parser("k8s", help=K8S_HELP, description=K8S_HELP, add_help=False)
    k8s.add_argument("k8s_args", nargs=argparse.REMAINDER, metavar="values|image-tag ...")
    k8s.set_defaults(handler=lazy("grader.cli.hub_commands:k8s"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["k8s"]:
        # grader.hub.kubernetes.values parses its own arguments (and --help), which argparse's
        # REMAINDER cannot pass on when they start with an option.
        return lazy("grader.cli.hub_commands:k8s")(argparse.Namespace(k8s_args=argv[1:]))
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
