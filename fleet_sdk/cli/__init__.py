"""The `fleet` command. Thin: parse, call one library function, print.

User mistakes (FleetError, pydantic's ValidationError) print one `error:` block and exit 1, and so
does a file that cannot be read or written or is not UTF-8 (naming the file); `--debug` shows the
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from fleet_sdk.cli import disko as disko_cmd
from fleet_sdk.cli import inventory as inventory_cmd
from fleet_sdk.cli import machine as machine_cmd
from fleet_sdk.cli import migrate as migrate_cmd
from fleet_sdk.cli import plan as plan_cmd
from fleet_sdk.cli import vars as vars_cmd
from fleet_sdk.cli import zerotier as zerotier_cmd
from fleet_sdk.errors import FleetError, file_error_message
from fleet_sdk.stack.settings import describe_validation_error


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
    inventory_cmd.register(sub, common)
    machine_cmd.register(sub, common)
    migrate_cmd.register(sub, common)
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
    except (OSError, UnicodeDecodeError) as e:
        # a file of the project or the fleet repository that cannot be read or written (a folder where a
        # file should be, a link loop, an immutable folder, a full disk) or is not text: the user's to
        # repair. One that names no file is a bug, and shows its traceback.
        message = file_error_message(e)
        if args.debug or message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
