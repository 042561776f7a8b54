"""`fleet zerotier admit` and `deauthorize`: authorise members on the instance's controller, or no longer."""

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
    deauth = zs.add_parser(
        "deauthorize", parents=[parent], help="deauthorize members on the network's controller (over SSH)"
    )
    deauth.add_argument("network", metavar="NETWORK_ID", help="the network id (16 hex digits)")
    deauth.add_argument("members", nargs="+", metavar="MEMBER_ID", help="member ids (10 hex digits)")
    deauth.add_argument(
        "--target-host", help="[user@]host[:port] of the controller (default: the target host of the fleet's)"
    )
    deauth.add_argument("--force", action="store_true", help="deauthorize members the fleet still admits too")
    deauth.set_defaults(run=run_deauthorize)


def run_admit(args: argparse.Namespace) -> int:
    from fleet_sdk.vars.store import VarsStore
    from fleet_sdk.zerotier.admission import admit, resolve_admission

    fleet, settings = common.load(args)
    store = VarsStore(settings.repo)
    admission = resolve_admission(store, fleet, args.instance, args.members or None)
    sys.stdout.write(admit(store, fleet, admission, args.target_host))
    return 0


def run_deauthorize(args: argparse.Namespace) -> int:
    from fleet_sdk.vars.store import VarsStore
    from fleet_sdk.zerotier.admission import deauthorize, resolve_deauthorization

    fleet, settings = common.load(args)
    store = VarsStore(settings.repo)
    plan = resolve_deauthorization(store, fleet, args.network, args.members, args.force)
    for mid, who in sorted(plan.kept.items()):
        print(f"kept {mid}: it is {who} of the fleet (--force deauthorizes it anyway)", file=sys.stderr)
    sys.stdout.write(deauthorize(store, fleet, plan, args.target_host))
    return 0
