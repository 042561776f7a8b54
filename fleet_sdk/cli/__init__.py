"""The `fleet` command. Thin: parse, call one library function, print.

User mistakes (FleetError, pydantic's ValidationError) print one `error:` block and exit 1;
`--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from fleet_sdk.cli import disko as disko_cmd
from fleet_sdk.cli import plan as plan_cmd
from fleet_sdk.cli import vars as vars_cmd
from fleet_sdk.cli import zerotier as zerotier_cmd
from fleet_sdk.errors import FleetError
from fleet_sdk.stackconfig import describe_validation_error


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--repo", metavar="DIR", help="the fleet repository (default: fleet:repo of the stack, .)")
    common.add_argument("--stack", help="the stack whose config and program to use (default: the project's only stack)")
    common.add_argument("--project", metavar="DIR", help="the Pulumi project (default: nearest Pulumi.yaml)")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    p = argparse.ArgumentParser(prog="fleet", description="Provision, install and deploy a fleet of Nix machines.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    plan_cmd.register(sub, common)
    disko_cmd.register(sub, common)
    vars_cmd.register(sub, common)
    zerotier_cmd.register(sub, common)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except KeyboardInterrupt:
        return 130
    except (FleetError, ValidationError) as e:
        if args.debug:
            raise
        problems = describe_validation_error(e) if isinstance(e, ValidationError) else str(e).splitlines()
        print("error: " + "\n  ".join(problems or [type(e).__name__]), file=sys.stderr)
        return 1
