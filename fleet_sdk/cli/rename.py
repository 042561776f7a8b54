"""`fleet machine rename OLD NEW`: move a machine's vars, keys and records to its new name
(fleet_sdk.vars.rename); the stack then says `Machine(name="NEW", renamed_from=("OLD",))`, so its
server is kept through Pulumi aliases."""

from __future__ import annotations

import argparse
from typing import Any

from fleet_sdk.cli import common


def register(ms: Any, parent: argparse.ArgumentParser) -> None:
    r = ms.add_parser(
        "rename", parents=[parent], help="move a machine's vars, keys and records to a new name (the server is kept)"
    )
    r.add_argument("old", metavar="OLD")
    r.add_argument("new", metavar="NEW")
    r.set_defaults(run=run_rename)


def run_rename(args: argparse.Namespace) -> int:
    from fleet_sdk.tools.runner import LOCAL
    from fleet_sdk.vars.rename import rename_machine

    repo = common.repository(args)
    done = rename_machine(LOCAL, repo, args.old, args.new)
    for src, dst in done.moved:
        print(f"moved {src} -> {dst}")
    print(f"relinked {len(done.links)} secret(s) to machine {done.new}")
    if done.known_hosts:
        print(f"known_hosts: fleet:{done.old} -> fleet:{done.new}")
    print(f"now rename it in the stack, keeping its server: {done.stack_change()}")
    return 0
