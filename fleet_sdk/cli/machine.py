"""`fleet machine deploy`: put each machine's system on it, with automatic rollback (fleet_sdk.deploy)."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_sdk.cli import common
from fleet_sdk.errors import ConfigError

if TYPE_CHECKING:
    from fleet_sdk.deploy import DeploySettings
    from fleet_sdk.spec import Deploy

_print_lock = threading.Lock()  # progress lines of parallel machines stay whole


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("machine", help="machines of the fleet")
    ms = p.add_subparsers(dest="machine_command", metavar="COMMAND", required=True)
    d = ms.add_parser("deploy", parents=[parent], help="activate each machine's system, rolling back on failure")
    d.add_argument("machines", nargs="*", metavar="MACHINE", help="default: every enabled machine with a target host")
    d.add_argument("--target-host", metavar="H", help="[user@]host[:port] (one machine only)")
    d.add_argument("--jobs", "-j", type=int, default=4, metavar="N", help="machines deployed at once (default 4)")
    d.add_argument("--json", action="store_true", help="print the results as JSON")
    d.add_argument(
        "--system",
        action="append",
        default=[],
        metavar="[MACHINE=]PATH",
        help="the system closure to deploy instead of building the flake's (repeatable)",
    )
    d.add_argument("--known-hosts", type=Path, metavar="FILE", help="check host keys against this file, not the vars")
    d.add_argument("-i", "--identity-file", type=Path, metavar="FILE", help="ssh key to log in with")
    # unset: each machine's deploy settings (Machine.deploy), else the engine's defaults
    d.add_argument("--reboot", choices=["never", "if-needed"], help="reboot when the kernel changed (default never)")
    d.add_argument("--on-unit-failure", choices=["rollback", "keep"], help="default rollback")
    d.add_argument("--build-on", choices=["local", "remote"], help="default local")
    d.add_argument("--no-secrets", action="store_true", help="do not upload the machine key and activation secrets")
    d.set_defaults(run=run_deploy)
    from fleet_sdk.cli import install, rename

    install.register(ms, parent)
    rename.register(ms, parent)


def _progress(machine: str, message: str) -> None:
    with _print_lock:
        print(f"[{machine}] {message}", file=sys.stderr, flush=True)


def _systems(values: list[str], machines: list[str]) -> dict[str, str]:
    systems: dict[str, str] = {}
    for value in values:
        name, eq, path = value.partition("=")
        if not eq or "/" in name:  # a bare path
            if len(machines) != 1:
                raise ConfigError(f"--system {value}: name the machine (MACHINE=PATH) when deploying several")
            name, path = machines[0], value
        systems[name] = path
    return systems


def _settings(args: argparse.Namespace, deploy: Deploy | None) -> DeploySettings:
    """The machine's deploy settings (Machine.deploy), with the policies given on the command line."""
    import dataclasses

    from fleet_sdk.deploy.from_spec import deploy_settings

    chosen = {k: getattr(args, k) for k in ("reboot", "on_unit_failure", "build_on") if getattr(args, k) is not None}
    return dataclasses.replace(deploy_settings(deploy), **chosen)


def run_deploy(args: argparse.Namespace) -> int:
    from fleet_sdk.deploy import deploy_machines
    from fleet_sdk.deploy.probe import probe_closures, probe_enabled, stack_flake
    from fleet_sdk.deploy.sources import probe_wanted, requests_for
    from fleet_sdk.sops import operator_identities
    from fleet_sdk.tools.runner import LOCAL
    from fleet_sdk.vars.access import grant_shared_locked

    fleet, settings = common.load(args)
    machines = args.machines or [m.name for m in fleet.machines if m.enabled and m.target_host]
    if args.target_host and len(machines) != 1:
        raise ConfigError("--target-host names one machine's address: deploy one machine with it")
    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    flake = stack_flake(settings)
    per_machine = {name: _settings(args, fleet.machine(name).deploy) for name in machines}
    systems = _systems(args.system, machines)
    identities = None if args.no_secrets else operator_identities()
    if identities is not None:  # the systems built next carry the shared secrets: they must open there
        grant_shared_locked(settings.repo, fleet, machines, identities, command="fleet machine deploy")
    wanted = probe_wanted(fleet, machines, systems) if probe_enabled(settings.values) else {}
    probed = probe_closures(LOCAL, flake, wanted)  # one evaluation for all machines
    requests = [
        request
        for name in machines
        for request in requests_for(
            fleet,
            settings.repo,
            [name],
            runner=LOCAL,
            flake=flake,
            systems=systems,
            target_host=args.target_host,
            known_hosts=args.known_hosts,
            identity_file=args.identity_file,
            build_on=per_machine[name].build_on,
            identities=identities,
            probed=probed,
        )
    ]
    results = deploy_machines(requests, per_machine, LOCAL, jobs=args.jobs, progress=_progress)
    if args.json:
        doc = {r.machine: r.to_json() for r in results}
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    for r in results:
        line = f"[{r.machine}] {r.status}" + (f" {r.current}" if r.current else "")
        if r.generation is not None:
            line += f" (generation {r.generation})"
        if r.reboot_required:
            line += "; reboot required"
        print(line, file=sys.stderr if args.json else sys.stdout)
        if r.error:
            print(f"error: {r.error}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1
