"""`fleet vars …`: secrets and public values of the fleet repository."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("vars", help="generated secrets and public values")
    vars_sub = p.add_subparsers(dest="vars_command", metavar="COMMAND", required=True)
    keygen = vars_sub.add_parser(
        "keygen",
        parents=[common],
        help="create your admin age key (unless you have one) and register it in sops/users/",
    )
    keygen.add_argument("--name", help="the user name in sops/users/ (default: $USER)")
    keygen.set_defaults(run=run_keygen)
    fix = vars_sub.add_parser(
        "fix",
        parents=[common],
        help="re-key every secret whose recipients differ from its member links",
    )
    fix.set_defaults(run=run_fix)


def run_keygen(args: argparse.Namespace) -> int:
    from fleet_sdk.adminkey import keygen

    repo = Path(args.repo or ".")
    result = keygen(repo, args.name)
    if result.created_key:
        print(
            f"created age key {result.public_key} in {result.key_file} (keep it safe: it opens every secret)"
        )
    else:
        where = result.key_file or "SOPS_AGE_KEY"
        print(f"using age key {result.public_key} from {where}")
    user_file = repo / "sops" / "users" / result.user / "key.json"
    print(f"{'wrote' if result.wrote_user else 'unchanged'}: {user_file}")
    for d in result.rekeyed:
        print(f"re-keyed: {d / 'secret'}")
    for d in result.stuck:
        print(
            f"warning: {d / 'secret'} links {result.user} but your key cannot open it; "
            "an admin who can must run `fleet vars fix`"
        )
    return 0


def run_fix(args: argparse.Namespace) -> int:
    from fleet_sdk.keys import SopsTree, rekey_all
    from fleet_sdk.sops import operator_identities

    repo = Path(args.repo or ".")
    changed, stuck = rekey_all(SopsTree(repo), operator_identities())
    for d in changed:
        print(f"re-keyed: {d / 'secret'}")
    for d in stuck:
        print(f"cannot open (not encrypted to your key): {d / 'secret'}")
    if not changed and not stuck:
        print("every secret is encrypted to exactly its members")
    return 1 if stuck else 0
