"""`fleet zerotier admit`: authorise members on the instance's controller."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fleet_sdk.cli import common


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("zerotier", help="ZeroTier networks of the fleet")
    zs = p.add_subparsers(dest="zerotier_command", metavar="COMMAND", required=True)
    admit = zs.add_parser("admit", parents=[parent], help="authorise members on the controller (over SSH)")
    admit.add_argument("instance")
    admit.add_argument("members", nargs="*", metavar="MEMBER", help="machines or member ids (default: all)")
    admit.add_argument("--target-host", help="[user@]host[:port] of the controller (default: its target host)")
    admit.set_defaults(run=run_admit)


def run_admit(args: argparse.Namespace) -> int:
    from fleet_sdk.vars.store import VarsStore
    from fleet_sdk.zerotier.admission import admit, resolve_admission

    fleet, settings = common.load(args)
    store = VarsStore(settings.repo)
    admission = resolve_admission(store, fleet, args.instance, args.members or None)
    sys.stdout.write(admit(store, fleet, admission, args.target_host))
    return 0
