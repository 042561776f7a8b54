"""`fleet vars …`: generated secrets and public values of the fleet repository."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fleet_sdk.cli import common


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("vars", help="generated secrets and public values")
    vs = p.add_subparsers(dest="vars_command", metavar="COMMAND", required=True)

    _register_generate(vs, parent)

    chk = vs.add_parser("check", parents=[parent], help="report missing, outdated or wrongly encrypted vars")
    chk.add_argument("machines", nargs="*", metavar="MACHINE")
    add_flake_flags(chk)
    chk.set_defaults(run=run_check)

    lst = vs.add_parser("list", parents=[parent], help="the vars of a machine (secrets masked)")
    lst.add_argument("machine")
    add_flake_flags(lst)
    lst.set_defaults(run=run_list)

    get = vs.add_parser("get", parents=[parent], help="print one var (secrets decrypted with your key)")
    get.add_argument("machine")
    get.add_argument("var", metavar="GEN/FILE")
    get.set_defaults(run=run_get)

    set_ = vs.add_parser("set", parents=[parent], help="store a var read from standard input")
    set_.add_argument("machine")
    set_.add_argument("var", metavar="GEN/FILE")
    set_.set_defaults(run=run_set)

    keygen = vs.add_parser(
        "keygen",
        parents=[parent],
        help="create your admin age key (unless you have one) and register it in sops/users/",
    )
    keygen.add_argument("--name", help="the user name in sops/users/ (default: $USER)")
    keygen.set_defaults(run=run_keygen)

    fix = vs.add_parser(
        "fix", parents=[parent], help="link machines to their deploy secrets and re-key secrets whose recipients differ"
    )
    fix.add_argument(
        "--accept-key-change",
        action="store_true",
        help="re-encrypt to machine keys that changed under their secrets (shown first; refused without this)",
    )
    fix.set_defaults(run=run_fix)
    from fleet_sdk.cli import rotate

    rotate.register(vs, parent)


def _register_generate(vs: Any, parent: argparse.ArgumentParser) -> None:
    gen = vs.add_parser("generate", parents=[parent], help="run the generators whose files are missing")
    gen.add_argument("machines", nargs="*", metavar="MACHINE", help="default: every machine")
    gen.add_argument(
        "-g",
        "--generator",
        action="append",
        dest="generators",
        metavar="GEN",
        help="run these generators (and their dependents) even if complete",
    )
    gen.add_argument("--regenerate", action="store_true", help="run every requested generator again")
    gen.add_argument("--no-sandbox", action="store_true", help="run scripts without bubblewrap")
    gen.add_argument(
        "--prompts-file", type=Path, metavar="FILE", help='prompt values as {"<generator>": {"<prompt>": "value"}}'
    )
    gen.add_argument("--json", action="store_true", help="print the public values of the machines as JSON")
    add_flake_flags(gen)
    gen.set_defaults(run=run_generate)


def add_flake_flags(parser: argparse.ArgumentParser) -> None:
    """--from-flake / --no-flake: whether the generators of the stack's flake are evaluated (default:
    when the flake is on this machine and fleet:closureProbe is on; fleet_sdk.vars.declared)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--from-flake",
        action="store_const",
        const="flake",
        dest="flake_mode",
        help="evaluate the generators the flake's machines declare (clan.core.vars.generators); "
        "an error when the flake is not there",
    )
    group.add_argument(
        "--no-flake",
        action="store_const",
        const="python",
        dest="flake_mode",
        help="only the generators the stack declares in Python",
    )
    parser.set_defaults(flake_mode="auto")


def _progress(done: int, total: int, gid: Any) -> None:
    if sys.stderr.isatty():
        width = 30
        bar = "#" * (width * done // total)
        print(f"\r[{bar:<{width}}] {done}/{total} {gid}"[:120].ljust(120), end="", file=sys.stderr, flush=True)
        if done == total:
            print(file=sys.stderr)
    elif total >= 10 and (done == total or done % max(1, total // 10) == 0):
        print(f"generated {done}/{total}", file=sys.stderr)


def run_generate(args: argparse.Namespace) -> int:
    from fleet_sdk.deploy.stored import DIGEST_KEY, ciphertext_digest
    from fleet_sdk.vars.generate import GenerateOptions, generate, public_values
    from fleet_sdk.vars.store import VarsStore

    fleet, settings = common.load(args)
    options = GenerateOptions(
        machines=args.machines or None,
        generators=args.generators,
        regenerate=args.regenerate,
        sandbox=not args.no_sandbox,
        prompts_file=args.prompts_file,
    )
    result = generate(settings.repo, fleet, options, progress=_progress)
    if args.json:
        store = VarsStore(settings.repo)
        machines = args.machines or [m.name for m in fleet.machines]
        # with the digest of the secrets a deploy uploads, which the graph's deploy step takes when
        # this very run generated them (graph.deploy.secrets_trigger)
        doc = {
            m: public_values(store, fleet, m) | {DIGEST_KEY: ciphertext_digest(settings.repo, fleet, fleet.machine(m))}
            for m in machines
        }
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        for gid in result.generated:
            print(f"generated {gid}")
        if not result.generated:
            print("every generator is up to date")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from fleet_sdk.vars.inspect import check
    from fleet_sdk.vars.store import VarsStore

    fleet, settings = common.load(args)
    findings = check(VarsStore(settings.repo), fleet, args.machines or None)
    for f in findings:
        print(f)
    if not findings:
        print("all vars are present, current and encrypted to their members")
    return 1 if findings else 0


def run_list(args: argparse.Namespace) -> int:
    from fleet_sdk.vars.inspect import listing
    from fleet_sdk.vars.store import VarsStore

    fleet, settings = common.load(args)
    for line in listing(VarsStore(settings.repo), fleet, fleet.machine(args.machine).name):
        print(line)
    return 0


def run_get(args: argparse.Namespace) -> int:
    from fleet_sdk.sops import operator_identities
    from fleet_sdk.vars.inspect import find_var
    from fleet_sdk.vars.store import VarsStore

    fleet, settings = common.load(args)
    gid, _, f = find_var(fleet, fleet.machine(args.machine).name, args.var)
    value = VarsStore(settings.repo).read(gid, f, operator_identities())
    if value is None:
        print(f"error: {args.var} of {args.machine} is not set; run `fleet vars generate`", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(value)
    return 0


def run_set(args: argparse.Namespace) -> int:
    from fleet_sdk.sops import operator_identities
    from fleet_sdk.vars.inspect import set_var
    from fleet_sdk.vars.store import VarsStore
    from fleet_sdk.vars.validate import MAX_VALUE_BYTES

    fleet, settings = common.load(args)
    value = sys.stdin.buffer.read(MAX_VALUE_BYTES + 1)  # one byte more, so a longer value is refused
    result = set_var(
        VarsStore(settings.repo), fleet, fleet.machine(args.machine).name, args.var, value, operator_identities()
    )
    print(f"stored {result.folder}", file=sys.stderr)
    for note in result.notes:
        print(f"warning: {note}", file=sys.stderr)
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from fleet_sdk.sops.keygen import keygen

    repo = common.repository(args)
    result = keygen(repo, args.name)
    if result.created_key:
        print(f"created age key {result.public_key} in {result.key_file} (keep it safe: it opens every secret)")
    else:
        print(f"using age key {result.public_key} from {result.key_file or 'SOPS_AGE_KEY'}")
    print(f"{'wrote' if result.wrote_user else 'unchanged'}: {repo / 'sops' / 'users' / result.user / 'key.json'}")
    for d in result.rekeyed:
        print(f"re-keyed: {d / 'secret'}")
    for d in result.stuck:
        print(
            f"warning: {d / 'secret'} links {result.user} but your key cannot open it; "
            "an admin who can must run `fleet vars fix`"
        )
    return 0


def run_fix(args: argparse.Namespace) -> int:
    from fleet_sdk.sops import operator_identities
    from fleet_sdk.vars.inspect import fix, fix_links
    from fleet_sdk.vars.store import VarsStore

    identities = operator_identities()
    if args.repo and not (args.project or Path("Pulumi.yaml").exists()):
        result = fix_links(Path(args.repo), identities, args.accept_key_change)  # no fleet: links only
    else:
        fleet, settings = common.load(args)
        result = fix(VarsStore(settings.repo), fleet, identities, args.accept_key_change)
    for change in result.accepted:
        print(
            f"accepted the new key of machine {change.machine} (its secrets were encrypted to {', '.join(change.old)})"
        )
    for path in result.removed:
        print(f"removed (left by an interrupted write): {path}")
    for folder in result.tracked:
        print(f"git add: {folder}")
    for line in result.unscoped:
        print(line)
    for revoked in result.revoked:
        print(revoked.describe())
    for machine in result.forgotten:
        print(f"known_hosts: dropped fleet:{machine} (not an enabled machine of the fleet)")
    for d in result.rekeyed:
        print(f"re-keyed: {d / 'secret'}")
    for d in result.stuck:
        print(f"cannot open (not encrypted to your key): {d / 'secret'}")
    for rel in result.rotate:
        print(
            f"warning: {rel} was readable by a machine other than its owner; rotate it "
            "(generate it anew and deploy), since that machine may have kept a copy",
            file=sys.stderr,
        )
    for machine, generators in result.rotate_shared().items():
        print(
            f"warning: machine {machine} could read the shared secrets of {', '.join(generators)} and may have "
            "kept copies; rotate them: " + "; ".join(f"`fleet vars rotate --shared {g}`" for g in generators),
            file=sys.stderr,
        )
    if not (result.rekeyed or result.stuck or result.unscoped or result.revoked):
        print("every secret is encrypted to exactly its members")
    if not (result.removed or result.tracked):
        print("every var and key is tracked by git")
    return 1 if result.stuck else 0
