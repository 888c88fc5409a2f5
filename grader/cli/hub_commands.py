"""The handlers of ``grader-admin course add`` and ``grader-admin hub caddyfile``; each imports
the hub settings (JupyterHub, jsonschema, YAML) only when it runs."""

from __future__ import annotations

import argparse
import sys


def course_add(args: argparse.Namespace) -> int:
    from grader.hub.course_add import add_course
    from grader.hub.layers import ConfigError

    try:
        entry = add_course(
            args.course_id, instructors=args.instructor, graders=args.grader, students=args.student,
            title=args.title, formgrader_port=args.port, config_file=args.config,
        )
    except ConfigError as error:
        print(f"grader: {error}", file=sys.stderr)
        return 2
    print(f"added course {args.course_id} (formgrader on port {entry['formgrader_port']}); "
          "restart the hub to create its accounts and start its formgrader")
    return 0


def hub_caddyfile(args: argparse.Namespace) -> int:
    from grader.hub.layers import ConfigError
    from grader.hub.services.tls_front import render_caddyfile
    from grader.hub.settings import config_path, load_settings

    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"grader: {error}", file=sys.stderr)
        return 2
    if not settings.https.enabled:
        print(f"grader: {config_path()}: https.enabled is not true: the hub starts no TLS front", file=sys.stderr)
        return 1
    print(render_caddyfile(settings), end="")
    return 0


def k8s(args: argparse.Namespace) -> int:
    from grader.hub.kubernetes.values import main

    return main(args.k8s_args)
