"""ssh, for commands on fleet machines: argv built here, run through the runner. Scripts go on
stdin (`sh -s`), so nothing secret is ever a process argument."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleet_sdk.errors import FleetError
from fleet_sdk.targets import TargetHost
from fleet_sdk.tools.runner import CmdResult, Runner

OPTIONS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=15")


def parse_target(target: str) -> TargetHost:
    """`[user@]host[:port]`, user root unless named; a bad target is a FleetError naming it."""
    try:
        return TargetHost.parse(target)
    except ValueError as e:
        raise FleetError(f"target host: {e}") from None


def options(t: TargetHost, identity_file: Path | None = None, base: Sequence[str] = OPTIONS) -> list[str]:
    """ssh's options for `t`: `base`, its port, and only `identity_file` as the key when one is given."""
    args = list(base)
    if t.port:
        args += ["-p", str(t.port)]
    if identity_file:
        args += ["-i", str(identity_file), "-o", "IdentitiesOnly=yes"]
    return args


def argv(target: str, identity_file: Path | None = None) -> list[str]:
    t = parse_target(target)
    # "--" ends ssh's options; the destination is validated, so it cannot be read as one anyway
    return ["ssh", *options(t, identity_file), "--", f"{t.user}@{t.host}", "sh", "-s"]


def run_script(
    runner: Runner, target: str, script: str, identity_file: Path | None = None, timeout: float = 120
) -> CmdResult:
    return runner.run(argv(target, identity_file), input=script.encode(), timeout=timeout, hint=f"on {target}")
