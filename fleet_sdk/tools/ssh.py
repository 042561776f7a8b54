"""ssh, for commands on fleet machines: argv built here, run through the runner. Scripts go on
stdin (`sh -s`), so nothing secret is ever a process argument."""

from __future__ import annotations

from pathlib import Path

from fleet_sdk.errors import FleetError
from fleet_sdk.spec.targets import TargetHost
from fleet_sdk.tools.runner import CmdResult, run

OPTIONS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=15")


def parse_target(target: str) -> TargetHost:
    """`[user@]host[:port]`, user root unless named; a bad target is a FleetError naming it."""
    try:
        return TargetHost.parse(target)
    except ValueError as e:
        raise FleetError(f"target host: {e}") from None


def argv(target: str, identity_file: Path | None = None) -> list[str]:
    t = parse_target(target)
    args = ["ssh", *OPTIONS]
    if t.port:
        args += ["-p", str(t.port)]
    if identity_file:
        args += ["-i", str(identity_file), "-o", "IdentitiesOnly=yes"]
    # "--" ends ssh's options; the destination is validated, so it cannot be read as one anyway
    return [*args, "--", f"{t.user}@{t.host}", "sh", "-s"]


def run_script(target: str, script: str, identity_file: Path | None = None, timeout: float = 120) -> CmdResult:
    return run(argv(target, identity_file), input=script.encode(), timeout=timeout, hint=f"on {target}")
