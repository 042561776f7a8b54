"""Evaluating Nix files and expressions with the Nix CLI (`nix-instantiate`, Debian's nix-bin).

Evaluation is pure `--eval --strict --json` and never touches a Nix store: `--store dummy://` is an
in-memory store that cannot build or hold anything, and `--readonly-mode` keeps Nix from opening a
store database. So evaluation needs no daemon, no `/nix` (a non-root user cannot create it), no
`nixbld` group, no sandbox and no experimental features, works in a fresh CI container, and cannot
copy a file into the store (a path such as `"${./key}"` evaluates to its would-be store path, nothing
is written). `--store` on the command line also overrides `NIX_REMOTE`. What needs building
(import-from-derivation) or downloading (`builtins.fetch*`, `<nixpkgs>` from a channel URL) fails.

There is no nixpkgs here, so a file that is a function, e.g. `{ lib, ... }: { disko.devices = …; }`,
is called with `args` for the arguments it names; an argument without default that `args` does not
give gets a stand-in that raises a clear error only if the file actually uses it. A function returning
a function (a parametrised NixOS module) is called again the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleet_sdk.errors import FleetError
from fleet_sdk.tools.runner import CommandError, run

NIX_INSTANTIATE = "nix-instantiate"
EVAL_FLAGS = ("--eval", "--strict", "--json", "--store", "dummy://", "--readonly-mode")
DEFAULT_TIMEOUT = 60.0

# Called with `--argstr file ABSPATH --argstr fleetArgs JSON`; argstr avoids quoting paths into Nix source.
_CALL_FILE = """
{ file, fleetArgs }:
let
  given = builtins.fromJSON fleetArgs;
  standIn = name: builtins.throw ("${file} uses the function argument `${name}`, which fleet_sdk "
    + "does not provide (it evaluates without nixpkgs): pass it in args, or give it a default");
  call = v:
    if builtins.isFunction v then
      let
        formals = builtins.functionArgs v;
        needed = builtins.filter (n: !formals.${n}) (builtins.attrNames formals);
        standIns = builtins.listToAttrs (map (n: { name = n; value = standIn n; }) needed);
      in call (v (standIns // builtins.intersectAttrs formals given))
    else v;
in call (import (/. + file))
"""


class NixError(FleetError):
    """Nix could not evaluate a file or expression; carries the start of Nix's error message."""

    def __init__(self, subject: str, nix_message: str, advice: str) -> None:
        self.subject = subject
        self.nix_message = nix_message
        super().__init__(f"{subject}: {nix_message}\n{advice}" if nix_message else f"{subject}\n{advice}")


def eval_file(
    path: Path,
    attr: str | None = None,
    *,
    args: dict[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Any:
    """The value of the Nix file `path` (or of its attribute path `attr`, e.g. "disko.devices") as JSON data.

    `args` (JSON values; `Path`s become absolute path strings) are passed to a file that is a function."""
    path = Path(path).absolute()
    subject = f"evaluating {path}" + (f" (attribute {attr})" if attr else "")
    if not path.is_file():
        raise NixError(subject, "", "the file does not exist; check the path")
    argv: list[str | Path] = [
        NIX_INSTANTIATE,
        *EVAL_FLAGS,
        "--expr",
        _CALL_FILE,
        "--argstr",
        "file",
        str(path),
        "--argstr",
        "fleetArgs",
        json.dumps(args or {}, default=_json_default),
    ]
    if attr:
        argv += ["--attr", attr]
    return _evaluate(argv, subject, f"fix {path.name} (or the attribute path) so that it evaluates", timeout)


def eval_expr(expr: str, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """The value of the Nix expression `expr` as JSON data (a function is called with its defaults)."""
    subject = f"evaluating the Nix expression {expr[:60]!r}" + ("…" if len(expr) > 60 else "")
    argv: list[str | Path] = [NIX_INSTANTIATE, *EVAL_FLAGS, "--expr", expr]
    return _evaluate(argv, subject, "fix the expression so that it evaluates", timeout)


def _evaluate(argv: list[str | Path], subject: str, advice: str, timeout: float) -> Any:
    try:
        done = run(argv, timeout=timeout)
    except CommandError as e:
        if e.returncode == 127 and not e.stderr:
            raise NixError(
                subject, "nix-instantiate is not installed", "install Nix (Debian package nix-bin)"
            ) from None
        if e.returncode is None:
            raise NixError(subject, f"timed out after {timeout:g} s", "check the file for endless recursion") from None
        raise NixError(subject, _summary(e.stderr), advice) from None
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise NixError(subject, "nix-instantiate printed no JSON", advice) from None


def _summary(stderr: str, lines: int = 12) -> str:
    """The start of Nix's error: warnings (e.g. about nix.conf settings) and the --show-trace hint dropped."""
    kept = [
        line for line in stderr.strip().splitlines() if not line.startswith("warning:") and "--show-trace" not in line
    ]
    text = "\n".join(kept[:lines]).strip()
    return text.removeprefix("error: ") or "nix-instantiate failed without a message"


def _json_default(value: object) -> str:
    if isinstance(value, Path):
        return str(value.absolute())
    raise TypeError(f"{type(value).__name__} cannot be passed to Nix; use JSON values or Path")
