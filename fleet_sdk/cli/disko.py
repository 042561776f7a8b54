"""`fleet disko render|check`: the machines' disk layouts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fleet_sdk.cli import common
from fleet_sdk.errors import SpecError


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("disko", help="disk layouts: render the disko JSON, check layouts against their hosts")
    disko_sub = p.add_subparsers(dest="disko_command", metavar="COMMAND", required=True)
    render = disko_sub.add_parser(
        "render", parents=[parent], help="print machines/<MACHINE>/disko.json as the install step writes it"
    )
    render.add_argument("machine")
    render.add_argument(
        "--write",
        action="store_true",
        help="write machines/<MACHINE>/disko.json in the fleet repository (only if changed; git add)",
    )
    render.set_defaults(run=run_render)
    check = disko_sub.add_parser(
        "check", parents=[parent], help="check layouts against their hosts and show the partition tables"
    )
    check.add_argument("machines", nargs="*", metavar="MACHINE", help="default: every machine with disks")
    check.set_defaults(run=run_check)


def run_render(args: argparse.Namespace) -> int:
    fleet, settings = common.load(args)
    machine = fleet.machine(args.machine)
    if machine.disks is None:
        raise SpecError(f"machine {machine.name!r}: disks: no layout is declared; set Machine.disks")
    text = machine.disks.render()
    if not args.write:
        sys.stdout.write(text)
        return 0
    from fleet_sdk.fs import atomic as fsutil
    from fleet_sdk.tools import git
    from fleet_sdk.tools.runner import LOCAL

    path = settings.repo / "machines" / machine.name / "disko.json"
    changed = fsutil.write_if_changed(path, text.encode(), 0o644, dir_mode=0o755)
    git.add(LOCAL, settings.repo, [path])
    print(f"{'wrote' if changed else 'unchanged'}: {path}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    # Loading the fleet already checks every layout against its host: a bad one stops here with
    # every problem listed (exit 1).
    fleet, settings = common.load(args)
    names = args.machines or [m.name for m in fleet.machines if m.disks is not None]
    # and the machines/<m>/disko.json files the install reads must be the stack's layouts
    from fleet_sdk.disko import rendered

    if problems := rendered.machines_problems(settings.repo, [fleet.machine(n) for n in names]):
        raise SpecError(problems)
    for name in names:
        machine = fleet.machine(name)
        if machine.disks is None:
            print(f"{name}: no disk layout declared")
            continue
        shape, size = machine.shape, machine.disk_bytes
        where = f"{shape.name}, {shape.boot} boot" if shape else "no host"
        print(f"{name} ({where}{f', {size / 10**9:g} GB' if size else ''}): ok")
        if size is None:
            continue
        for disk_name in machine.disks.disk:
            for p in machine.disks.partition_plan(disk_name, size):
                mib = p.size_bytes / 2**20
                print(
                    f"  {disk_name} {p.number} {p.name:<10} {p.type_code:<5} {p.label:<20} "
                    f"sectors {p.start_sector}-{p.end_sector} ({mib:,.0f} MiB)"
                )
    return 0
