"""`fleet migrate terranix`: an OpenTofu/Terraform state as Pulumi's bulk import file."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from fleet_sdk.cli import common


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("migrate", help="move resources other tools made into the stack")
    ms = p.add_subparsers(dest="migrate_command", metavar="COMMAND", required=True)
    terranix = ms.add_parser(
        "terranix",
        parents=[parent],
        help="write the import file of `pulumi import --file` for the resources of a terranix (tofu) state",
    )
    terranix.add_argument("state", metavar="STATE", help="the state file, format version 4 (`tofu state pull`)")
    terranix.add_argument("-o", "--output", metavar="FILE", help="write the import file here (default: stdout)")
    terranix.add_argument(
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override stack config as `fleet plan -c` does (use the config `pulumi up` will run with)",
    )
    terranix.set_defaults(run=run_terranix)


def run_terranix(args: argparse.Namespace) -> int:
    from fleet_sdk.fs.atomic import write_atomic
    from fleet_sdk.review.migrate import migrate, stack_graph
    from fleet_sdk.review.tfstate import read_state

    objects, skipped = read_state(Path(args.state))  # a bad state fails before the stack is looked for
    project = common.project_dir(args)
    stack = common.stack_name(args, project)
    graph, context = stack_graph(project, stack, args.config, Path(args.repo) if args.repo else None)
    migration = migrate(objects, graph, context, skipped)
    text = migration.to_json()
    if args.output:
        write_atomic(Path(args.output), text.encode(), mode=0o644, dir_mode=0o755)
    else:
        sys.stdout.write(text)
    for s in migration.skipped:
        print(f"skipped {s.address}: {s.reason}", file=sys.stderr)
    total = len(migration.mapped) + len(migration.skipped)
    where = f" to {args.output}" if args.output else ""
    print(f"mapped {len(migration.mapped)} of {total} state objects{where}", file=sys.stderr)
    if migration.targets:
        command = ["pulumi", "up", "--stack", stack, *(a for urn in migration.targets for a in ("--target", urn))]
        print(
            "the stack's explicit providers cannot be imported: before `pulumi import`, create them with\n  "
            + shlex.join(command),
            file=sys.stderr,
        )
    return 0
