"""`fleet vars rotate`: new values for generators (fleet_sdk.vars.rotate), or a new age key for a machine
(fleet_sdk.deploy.agekey, which deploys the machine in between)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fleet_sdk.cli import common
from fleet_sdk.errors import ConfigError


def register(vs: Any, parent: argparse.ArgumentParser) -> None:
    from fleet_sdk.cli.vars import add_flake_flags

    r = vs.add_parser(
        "rotate",
        parents=[parent],
        help="generate a generator's values anew (MACHINE GEN…, or --shared GEN…), or a machine's age key",
        description="MACHINE GEN…: per-machine generators of MACHINE; --shared GEN…: shared generators; "
        "MACHINE --age-key: a new age key for the machine, deployed without a moment it cannot decrypt",
    )
    r.add_argument("names", nargs="*", metavar="MACHINE|GEN")
    r.add_argument("--shared", action="store_true", help="the names are shared generators")
    r.add_argument(
        "--all-dependents", action="store_true", help="also rotate what derives from them (e.g. certificates of a CA)"
    )
    r.add_argument("--age-key", action="store_true", help="rotate MACHINE's age key (deploys the machine)")
    r.add_argument("--no-sandbox", action="store_true", help="run scripts without bubblewrap")
    r.add_argument("--prompts-file", type=Path, metavar="FILE", help='prompt values as {"<gen>": {"<prompt>": "v"}}')
    # --age-key deploys the machine, as `fleet machine deploy` does
    r.add_argument("--target-host", metavar="H", help="[user@]host[:port] of the machine (--age-key)")
    r.add_argument("--known-hosts", type=Path, metavar="FILE", help="check the host key against this file")
    r.add_argument("-i", "--identity-file", type=Path, metavar="FILE", help="ssh key to log in with")
    r.add_argument("--system", metavar="PATH", help="the system closure to deploy instead of the flake's")
    add_flake_flags(r)
    r.set_defaults(run=run_rotate)


def run_rotate(args: argparse.Namespace) -> int:
    if args.age_key:
        if len(args.names) != 1 or args.shared:
            raise ConfigError("--age-key rotates one machine's key: `fleet vars rotate MACHINE --age-key`")
        return _age_key(args, args.names[0])
    if args.shared:
        machine, names = None, args.names
    elif len(args.names) < 2:
        raise ConfigError("name a machine and its generators (`fleet vars rotate MACHINE GEN…`) or `--shared GEN…`")
    else:
        machine, names = args.names[0], args.names[1:]
    return _generators(args, machine, names)


def _generators(args: argparse.Namespace, machine: str | None, names: list[str]) -> int:
    from fleet_sdk.cli.vars import _progress
    from fleet_sdk.vars.generate import GenerateOptions
    from fleet_sdk.vars.rotate import rotate

    fleet, settings = common.load(args)
    options = GenerateOptions(sandbox=not args.no_sandbox, prompts_file=args.prompts_file)
    rotation, result = rotate(
        settings.repo, fleet, machine, names, all_dependents=args.all_dependents, options=options, progress=_progress
    )
    derived = set(rotation.dependents)
    for gid in result.generated:
        print(f"rotated {gid}" + (" (derived from it)" if gid in derived else ""))
    listed = ", ".join(rotation.machines)
    print(
        f"new values for machine(s) {listed}: `pulumi up` delivers them to exactly these "
        f"(or `fleet machine deploy {' '.join(rotation.machines)}`)"
    )
    return 0


def _age_key(args: argparse.Namespace, machine: str) -> int:
    from fleet_sdk.cli.machine import _progress
    from fleet_sdk.deploy.agekey import deliver_confirmed, rotate_age_key
    from fleet_sdk.deploy.from_spec import deploy_settings as machine_settings
    from fleet_sdk.deploy.probe import stack_flake
    from fleet_sdk.deploy.sources import requests_for
    from fleet_sdk.sops import operator_identities
    from fleet_sdk.tools.runner import LOCAL

    fleet, settings = common.load(args)
    m = fleet.machine(machine)
    if not m.enabled:
        raise ConfigError(f"machine {machine} is disabled: its age key is rotated when it runs (enable it first)")
    identities = operator_identities()
    flake = stack_flake(settings)
    deploy_settings = machine_settings(m.deploy)  # the machine's own, as its deploy step runs it

    def build() -> Any:
        (request,) = requests_for(
            fleet,
            settings.repo,
            [machine],
            runner=LOCAL,
            flake=flake,
            systems={machine: args.system} if args.system else {},
            target_host=args.target_host,
            known_hosts=args.known_hosts,
            identity_file=args.identity_file,
            build_on=deploy_settings.build_on,
            identities=identities,
        )
        return request

    def say(message: str) -> None:
        print(f"[{machine}] {message}", file=sys.stderr, flush=True)

    done = rotate_age_key(
        settings.repo,
        machine,
        identities,
        lambda: deliver_confirmed(build, deploy_settings, LOCAL, _progress),
        progress=say,
    )
    for folder in done.rekeyed:
        print(f"re-encrypted: {folder / 'secret'}")
    print(f"machine {machine}: age key rotated to {done.new}" + (f" (was {done.old})" if done.old else ""))
    return 0
