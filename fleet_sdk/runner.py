"""The one way fleet_sdk runs a program: argv lists (never shell strings), timeouts, secret redaction.

A failed command raises CommandError carrying its argv (printable with shlex.join, secrets
replaced by ***), exit code and the tail of its stderr.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.errors import FleetError

log = logging.getLogger("fleet_sdk.run")
REDACTED = "***"


@dataclass(frozen=True)
class CmdResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode()


class CommandError(FleetError):
    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: bytes, hint: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.decode(errors="replace")
        tail = "\n".join(self.stderr.strip().splitlines()[-20:])
        status = "timed out" if returncode is None else f"failed with exit code {returncode}"
        message = f"`{shlex.join(self.argv)}` {status}" + (f":\n{tail}" if tail else "")
        super().__init__(message + (f"\n{hint}" if hint else ""))


def redact(argv: Sequence[str], secrets: Sequence[str]) -> list[str]:
    out = []
    for arg in argv:
        for s in secrets:
            if s:
                arg = arg.replace(s, REDACTED)
        out.append(arg)
    return out


def run(
    argv: Sequence[str | Path],
    *,
    input: bytes | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    secrets: Sequence[str] = (),
    hint: str = "",
) -> CmdResult:
    """Run `argv` and capture its output. `env` is added to the current environment.
    `secrets` are redacted from logs and errors; pass secret values on stdin, never in argv."""
    args = [str(a) for a in argv]
    shown = redact(args, secrets)
    log.debug("run: %s", shlex.join(shown))
    try:
        done = subprocess.run(
            args,
            input=input,
            capture_output=True,
            cwd=cwd,
            env={**os.environ, **env} if env is not None else None,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise CommandError(shown, 127, b"", hint or f"{args[0]} is not installed or not on PATH") from None
    except subprocess.TimeoutExpired as e:
        raise CommandError(shown, None, e.stderr or b"", hint) from None
    result = CmdResult(tuple(shown), done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        stderr = done.stderr
        for s in secrets:
            if s:
                stderr = stderr.replace(s.encode(), REDACTED.encode())
        raise CommandError(shown, done.returncode, stderr, hint)
    return result
