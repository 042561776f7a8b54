"""What pulumi-command 1.2's `local.Command` provider does with one resource, for the applier
(fleet_sdk.testing.apply): the engine's diff of old and new inputs (`triggers` and `replace_on_changes`
replace, any other change updates, `ignore_changes` keeps the old value) and the run of the
resource's `create`, `update` or `delete` text (provider/pkg/provider/local/commandOutputs.go):

- argv: `interpreter` (default `/bin/sh -c`) + the text; cwd: `dir`, else the caller's directory;
- environment: the caller's, then `environment`; on an update or delete, unless
  `addPreviousOutputInEnv` is false, the previous `stdout`/`stderr` as PULUMI_COMMAND_STDOUT/STDERR;
- `stdin` on standard input; `stdout` and `stderr` captured, one trailing newline dropped;
- a non-zero exit fails the step (the applier raises CommandError naming the resource).

Unlike the provider, a command past its deadline is killed with its whole process group (the
`fleet` CLI's ssh and nix children included).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pulumi.runtime import rpc

COMMAND = "command:local:Command"
DEFAULT_INTERPRETER = ("/bin/sh", "-c")
PREVIOUS_STDOUT = "PULUMI_COMMAND_STDOUT"
PREVIOUS_STDERR = "PULUMI_COMMAND_STDERR"
REPLACING = frozenset({"triggers"})  # pulumi-command's `provider:"replaceOnChanges"` inputs

Operation = Literal["create", "update", "replace", "delete"]
Change = Literal["create", "update", "replace", "same"]


@dataclass(frozen=True)
class CommandRun:
    """One command the applier ran: for which resource and step, what, how it ended and how long
    it took. `exit_code` is None for a command killed at its deadline."""

    urn: str
    name: str
    operation: Operation
    command: str
    argv: tuple[str, ...]
    exit_code: int | None
    duration: float
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def plain(value: Any) -> Any:
    """A deserialized property without Pulumi's secret wrappers (the provider sees plain values)."""
    if rpc.is_rpc_secret(value):
        return plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def wrap_secret(value: Any, secret: bool) -> Any:
    return rpc.wrap_rpc_secret(value) if secret else value


def has_secret(inputs: Mapping[str, Any]) -> bool:
    return any(rpc.is_rpc_secret(v) for v in inputs.values())


def keep_ignored(old: Mapping[str, Any], new: Mapping[str, Any], ignore_changes: Iterable[str]) -> dict[str, Any]:
    """`new` with each ignored input as it was in `old` (dropped when `old` had none), as the engine
    does before it diffs, updates or replaces. Top-level names only, as the fleet's graph uses them."""
    kept = dict(new)
    for path in ignore_changes:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", path):
            raise ValueError(f"ignore_changes {path!r}: the applier compares top-level inputs only")
        if path in old:
            kept[path] = old[path]
        else:
            kept.pop(path, None)
    return kept


def change(old: Mapping[str, Any] | None, new: Mapping[str, Any], replace_on_changes: Iterable[str] = ()) -> Change:
    """What the engine does to a resource whose inputs were `old` (None: not in state) and are `new`."""
    if old is None:
        return "create"
    changed = {k for k in set(old) | set(new) if plain(old.get(k)) != plain(new.get(k))}
    if not changed:
        return "same"
    replacing = REPLACING | set(replace_on_changes)
    return "replace" if "*" in replacing or changed & replacing else "update"


_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """A Go duration ("10m", "1h30m", "45s") as seconds: a `custom_timeouts` value; None if not one."""
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


@dataclass(frozen=True)
class Invocation:
    """One step of one resource: which text to run and with what (the resource's plain inputs)."""

    urn: str
    name: str
    operation: Operation
    text: str
    inputs: Mapping[str, Any]
    previous: Mapping[str, Any] | None  # the resource's outputs in state, on update and delete


def command_text(operation: Operation, inputs: Mapping[str, Any]) -> str | None:
    """The text a step runs: `create` (create, replace), `update` else `create` (update), `delete`;
    None: nothing to run."""
    if operation == "update":
        found = inputs.get("update") or inputs.get("create")
    else:
        found = inputs.get("delete" if operation == "delete" else "create")
    return str(found) if found else None


def run(step: Invocation, *, environ: Mapping[str, str], cwd: Path, timeout: float) -> CommandRun:
    """Run one step as pulumi-command runs it and say how it ended (exit_code None: killed at
    the deadline of `timeout` seconds)."""
    inputs = step.inputs
    argv = (*(inputs.get("interpreter") or DEFAULT_INTERPRETER), step.text)
    env = {**environ, **{str(k): str(v) for k, v in (inputs.get("environment") or {}).items()}}
    if step.previous is not None and inputs.get("addPreviousOutputInEnv", True) is not False:
        for key, var in (("stdout", PREVIOUS_STDOUT), ("stderr", PREVIOUS_STDERR)):
            if value := plain(step.previous.get(key)):
                env[var] = str(value)
    stdin = str(inputs.get("stdin") or "")
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=Path(str(inputs["dir"])) if inputs.get("dir") else cwd,
        env=env,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, killed whole at the deadline
    )
    try:
        out, err = proc.communicate(stdin.encode() if stdin else None, timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        out, err = _kill(proc)
        code = None
    return CommandRun(
        urn=step.urn,
        name=step.name,
        operation=step.operation,
        command=step.text,
        argv=argv,
        exit_code=code,
        duration=time.monotonic() - started,
        stdout=out.decode(errors="replace").removesuffix("\n"),
        stderr=err.decode(errors="replace").removesuffix("\n"),
    )


def _kill(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Kill the command's process group; what it printed (children that left the group and hold
    its pipes are not waited for past a few seconds)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        return proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return b"", b""
