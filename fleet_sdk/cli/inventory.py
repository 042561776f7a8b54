"""`fleet inventory export`: the fleet as clan's inventory.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fleet_sdk.cli import common


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("inventory", help="clan's inventory of the fleet (inventory.json)")
    inventory_sub = p.add_subparsers(dest="inventory_command", metavar="COMMAND", required=True)
    export = inventory_sub.add_parser(
        "export",
        parents=[parent],
        help="print the fleet's machines and service instances as clan's inventory.json",
    )
    where = export.add_mutually_exclusive_group()
    where.add_argument(
        "--write",
        action="store_true",
        help="write inventory.json in the fleet repository (only if changed; git add)",
    )
    where.add_argument(
        "-o", "--output", metavar="FILE", help="write FILE instead (only if changed; git add in its work tree)"
    )
    export.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from fleet_sdk.stack import inventory
    from fleet_sdk.tools.runner import LOCAL

    fleet, settings = common.load(args)
    path = Path(args.output) if args.output else inventory.inventory_path(settings.repo)
    text = inventory.export(fleet, path)
    if not (args.write or args.output):
        sys.stdout.write(text)
        return 0
    changed = inventory.write(LOCAL, path, text)
    print(f"{'wrote' if changed else 'unchanged'}: {path}")
    return 0
