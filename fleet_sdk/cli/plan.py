"""`fleet plan`: what `pulumi preview` would register, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "plan",
        parents=[common],
        help="show the resources the stack declares, per machine, without the Pulumi CLI or credentials",
    )
    p.add_argument(
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override stack config as `pulumi preview -c` does (VALUE parsed as JSON when it is JSON)",
    )
    p.add_argument("--json", action="store_true", help="print the plan document (sorted keys, stable)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fleet_sdk.review.plan import make_plan, render_text
    from fleet_sdk.stack.settings import default_stack, find_project_dir

    project = Path(args.project) if args.project else find_project_dir(Path.cwd())
    plan = make_plan(project, args.stack or default_stack(project), args.config, Path(args.repo) if args.repo else None)
    if args.json:
        sys.stdout.write(plan.to_json())
        for w in plan.warnings:
            print(f"warning: {w}", file=sys.stderr)
    else:
        sys.stdout.write(render_text(plan))
    return 0
