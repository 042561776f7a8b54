"""The one way fleet_sdk runs a program: argv lists (never shell strings), timeouts, secret redaction.

Tool modules (git, nix, ssh, …) never pick where their commands run: they take a `Runner`, and the
engines calling them pass one (`LOCAL` unless told otherwise), so tests can swap in a recording one
(fleet_sdk.testing.RecordingRunner). `LocalRunner` runs commands on this machine.

A failed command raises CommandError carrying its argv (printable with shlex.join, secrets
replaced by ***), exit code and the tail of its stderr.

A command with a timeout runs in a session (so a process group) of its own, and whatever ends it —
its timeout, an exception or Ctrl-C in the calling thread, `kill_running` from another thread —
kills the whole group, not only its first process: a generator script's background children would
otherwise outlive it, holding its plaintexts and our pipes. Processes it leaves running after a
normal exit are killed too. (A sandboxed script's own PID namespace ends with its sandbox as well.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fleet_sdk.errors import CommandError

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


def redact(argv: Sequence[str], secrets: Sequence[str]) -> list[str]:
    out = []
    for arg in argv:
        for s in secrets:
            if s:
                arg = arg.replace(s, REDACTED)
        out.append(arg)
    return out


class Runner(Protocol):
    """Runs one command and captures its output; see `LocalRunner.run` for the contract."""

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        input: bytes | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = True,
        secrets: Sequence[str] = (),
        hint: str = "",
    ) -> CmdResult: ...


class LocalRunner:
    """Runs commands on this machine, as subprocesses of this process."""

    def run(
        self,
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
        `secrets` are redacted from logs and errors; pass secret values on stdin, never in argv.
        With a `timeout`, the command and everything it starts are killed when it ends (module doc).
        A program that is not installed raises CommandError with exit code 127, even unchecked."""
        args = [str(a) for a in argv]
        shown = redact(args, secrets)
        log.debug("run: %s", shlex.join(shown))
        full_env = {**os.environ, **env} if env is not None else None
        returncode: int | None
        try:
            if timeout is None:
                done = subprocess.run(args, input=input, capture_output=True, cwd=cwd, env=full_env, check=False)
                returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
            else:
                returncode, stdout, stderr = _run_in_group(args, input, cwd, full_env, timeout)
        except FileNotFoundError:
            raise CommandError(shown, 127, b"", hint or f"{args[0]} is not installed or not on PATH") from None
        if returncode is None:
            raise CommandError(shown, None, _redact_bytes(stderr, secrets), hint)
        result = CmdResult(tuple(shown), returncode, stdout, stderr)
        if check and returncode != 0:
            raise CommandError(shown, returncode, _redact_bytes(stderr, secrets), hint)
        return result


def _redact_bytes(data: bytes, secrets: Sequence[str]) -> bytes:
    for s in secrets:
        if s:
            data = data.replace(s.encode(), REDACTED.encode())
    return data


_running: set[int] = set()  # process groups of the commands in flight (their leaders' pids)
_running_lock = threading.Lock()
_DRAIN_AFTER_KILL = 5.0  # seconds; only a process that left the group can hold our pipes longer


def _run_in_group(
    args: list[str], input: bytes | None, cwd: Path | None, env: Mapping[str, str] | None, timeout: float
) -> tuple[int | None, bytes, bytes]:
    """(exit code, or None when it timed out; stdout; stderr) of `args` run as a new session."""
    # started and registered under the lock: a kill_running in between would miss the new group
    with _running_lock:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if input is not None else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        _running.add(proc.pid)
    try:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            try:
                stdout, stderr = proc.communicate(timeout=_DRAIN_AFTER_KILL)
            except subprocess.TimeoutExpired as e:
                stdout, stderr = e.stdout or b"", e.stderr or b""
            return None, stdout, stderr
        except BaseException:
            _kill_group(proc.pid)
            raise
        # what it left running: the leader is reaped, but a group with members keeps its id, so
        # this reaches them (and only them); with none left there is nothing to reach
        _kill_group(proc.pid)
        return proc.returncode, stdout, stderr
    finally:
        with _running_lock:
            _running.discard(proc.pid)
        if proc.returncode is None:
            proc.kill()  # the group is gone; reap the leader
            proc.wait()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_running() -> None:
    """Kill every command with a timeout that is in flight, with all it started: on Ctrl-C, which
    reaches only this process's group, while other threads wait for their commands."""
    with _running_lock:
        groups = list(_running)
    for pgid in groups:
        _kill_group(pgid)


LOCAL = LocalRunner()  # the default for engines whose caller passes no runner
