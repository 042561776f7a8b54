"""ssh, for commands on fleet machines: argv built here, run through the runner. Scripts go on
stdin (`sh -s`), so nothing secret is ever a process argument."""

from __future__ import annotations

from pathlib import Path

from fleet_sdk.runner import CmdResult, run

OPTIONS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=15")


def parse_target(target: str) -> tuple[str, str, int | None]:
    """`[user@]host[:port]` -> (user, host, port); user defaults to root."""
    user, _, rest = target.rpartition("@")
    host, port = rest, None
    if rest.count(":") == 1:
        host, _, p = rest.partition(":")
        port = int(p)
    return user or "root", host, port


def argv(target: str, identity_file: Path | None = None) -> list[str]:
    user, host, port = parse_target(target)
    args = ["ssh", *OPTIONS]
    if port:
        args += ["-p", str(port)]
    if identity_file:
        args += ["-i", str(identity_file), "-o", "IdentitiesOnly=yes"]
    return [*args, f"{user}@{host}", "sh", "-s"]


def run_script(target: str, script: str, identity_file: Path | None = None, timeout: float = 120) -> CmdResult:
    return run(argv(target, identity_file), input=script.encode(), timeout=timeout, hint=f"on {target}")
