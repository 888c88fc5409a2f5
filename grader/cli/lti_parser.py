"""The parser of ``grader lti ...`` (LMS integration, LTI 1.3 Advantage); the handlers are in
:mod:`grader.cli.lti_commands`, imported (with pylti1p3 and nbgrader) only when a command runs."""

from __future__ import annotations

import argparse

from grader.cli.dispatch import lazy

HELP = "LMS integration (LTI 1.3): roster sync from the LMS, scores back to its gradebook"
DESCRIPTION = """\
The LMS courses linked to a hub course are those its launches came from (auth.type: lti13 in the
platform YAML; docs/lms-lti13.md). Both commands read the hub's settings (the platform YAML) for
the registrations, the data folder (the tool's key, the LTI records) and the course directory.
"""


def add_lti_command(verbs: argparse._SubParsersAction) -> None:
    lti = verbs.add_parser("lti", help=HELP, description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = lti.add_subparsers(dest="lti_verb", required=True, metavar="COMMAND")

    sync = commands.add_parser("sync-roster", help="bring the LMS roster (NRPS) into the course's gradebook and "
                               "hub groups, removals included")
    sync.add_argument("course", help="hub course id")
    sync.add_argument("--hub-api", default=None,
                      help="the hub's API URL (default: $JUPYTERHUB_API_URL, else http://<ip>:<port>/hub/api of the settings)")
    sync.add_argument("--every", type=float, default=None, metavar="SECONDS",
                      help="repeat every SECONDS until stopped (a schedule without cron)")
    sync.set_defaults(handler=lazy("grader.cli.lti_commands:sync_roster"))

    push = commands.add_parser("push", help="post each student's score of an assignment to the LMS line item "
                               "(idempotent; a record of what was sent is kept)")
    push.add_argument("assignment")
    push.add_argument("--course", default=None, help="hub course id (default: the only course on the hub)")
    push.set_defaults(handler=lazy("grader.cli.lti_commands:push"))

    sent = commands.add_parser("sent", help="list the scores sent to LMSs, with their answers")
    sent.add_argument("assignment", nargs="?", default=None)
    sent.set_defaults(handler=lazy("grader.cli.lti_commands:sent"))
