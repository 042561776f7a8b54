"""`fleet machine install`: NixOS on a server with nixos-anywhere, adopting one that already runs the
machine (fleet_sdk.install). The graph's install step runs this very command, and `fleet machine
forget` when the step is deleted (the machine left the fleet, was disabled or is reinstalled)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fleet_sdk.cli import common
from fleet_sdk.errors import ConfigError
from fleet_sdk.tools.nixos_anywhere import PHASES


def register(ms: Any, parent: argparse.ArgumentParser) -> None:
    i = ms.add_parser("install", parents=[parent], help="install NixOS on a server (nixos-anywhere), resumable")
    i.add_argument("machine", metavar="MACHINE")
    i.add_argument("--target-host", metavar="H", help="[user@]host[:port] of the server (default: the machine's)")
    i.add_argument("--phases", default=",".join(PHASES), metavar="LIST", help=f"some of {','.join(PHASES)} (all)")
    i.add_argument("--json", action="store_true", help="print the result as JSON")
    i.add_argument("-i", "--identity-file", type=Path, metavar="FILE", help="ssh key (default: the deploy key in vars)")
    i.add_argument(
        "--timeout", type=float, default=300.0, metavar="S", help="deadline for the server to answer ssh (default 300)"
    )
    i.set_defaults(run=run_install)
    f = ms.add_parser("forget", parents=[parent], help="drop a machine's known_hosts line (it left or was disabled)")
    f.add_argument("machine", metavar="MACHINE")
    f.set_defaults(run=run_forget)


def phases(machine: str, value: str) -> tuple[str, ...]:
    """The phases of `--phases`, in the order nixos-anywhere runs them."""
    chosen = [p.strip() for p in value.split(",") if p.strip()]
    if unknown := [p for p in chosen if p not in PHASES]:
        raise ConfigError(
            f"machine {machine}: --phases {value}: no phase {', '.join(map(repr, unknown))}; "
            f"the phases are {','.join(PHASES)}"
        )
    if not chosen:
        raise ConfigError(f"machine {machine}: --phases names no phase; the phases are {','.join(PHASES)}")
    return tuple(p for p in PHASES if p in chosen)


def _progress(machine: str, message: str) -> None:
    print(f"[{machine}] {message}", file=sys.stderr, flush=True)


def run_install(args: argparse.Namespace) -> int:
    from fleet_sdk.deploy.probe import stack_flake
    from fleet_sdk.install import InstallSettings, install_machine
    from fleet_sdk.install.sources import install_request
    from fleet_sdk.sops import operator_identities
    from fleet_sdk.vars.access import grant_shared_locked

    fleet, settings = common.load(args)
    machine = fleet.machine(args.machine)
    chosen = phases(machine.name, args.phases)
    target = args.target_host or machine.target_host
    if not target:
        raise ConfigError(f"machine {machine.name}: no target host: pass --target-host root@ADDRESS")
    if args.timeout <= 0:
        raise ConfigError("--timeout must be a positive number of seconds")
    flake = stack_flake(settings)
    identities = operator_identities()
    # the system it gets carries the shared secrets: they must open on it (back from disabled)
    grant_shared_locked(settings.repo, fleet, [machine.name], identities, command="fleet machine install")
    request = install_request(
        fleet,
        settings.repo,
        machine.name,
        target=target,
        flake=flake,
        identities=identities,
        identity_file=args.identity_file,
        phases=chosen,
    )
    settings_ = InstallSettings(timeout=args.timeout, poll=min(5.0, args.timeout / 10))
    result = install_machine(request, settings_, progress=_progress)
    if args.json:
        sys.stdout.write(json.dumps({result.machine: result.to_json()}, indent=2, sort_keys=True) + "\n")
    line = f"[{result.machine}] {result.status}" + (f" {result.system}" if result.system else "")
    print(line, file=sys.stderr if args.json else sys.stdout)
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    return 0 if result.ok else 1


def run_forget(args: argparse.Namespace) -> int:
    from fleet_sdk.install import records
    from fleet_sdk.spec.names import IDENTIFIER
    from fleet_sdk.tools.runner import LOCAL

    if not IDENTIFIER.fullmatch(args.machine):  # a machine that may have left the spec: its name alone
        raise ConfigError(f"machine {args.machine!r}: not a machine name")
    repo = common.repository(args)
    dropped = records.forget(LOCAL, repo, args.machine)
    print(f"known_hosts: {'dropped' if dropped else 'no line for'} fleet:{args.machine}")
    return 0
