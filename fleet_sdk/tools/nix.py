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

`eval_flake_outputs` evaluates a flake (with the `nix` command, flakes enabled for Debian's Nix 2.8):
a Nix function applied to all its outputs at once, in one pure `nix eval`; what it reads is the
flake's own business (its tracked files, its locked inputs), nothing of this machine's environment.

`copy_closure` copies a store path with all it references to a machine (`nix copy --to
ssh-ng://user@host`), the push of a deploy (reference/deploy.md §1, §3). ssh's options reach Nix in
NIX_SSHOPTS, which Nix splits at whitespace, so no option may contain any; the port goes there too,
as Nix before 2.31 reads none from the URL.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fleet_sdk.errors import CommandError, FleetError, NixError
from fleet_sdk.tools import ssh
from fleet_sdk.tools.runner import CmdResult, Runner

NIX_INSTANTIATE = "nix-instantiate"
EVAL_FLAGS = ("--eval", "--strict", "--json", "--store", "dummy://", "--readonly-mode")
DEFAULT_TIMEOUT = 60.0
NIX = "nix"
COPY_TIMEOUT = 3600.0  # a first system closure over a slow link
FLAKE_FEATURES = ("--extra-experimental-features", "nix-command flakes")  # experimental in Nix 2.8
FLAKE_EVAL_TIMEOUT = 1800.0  # every NixOS system of a fleet, evaluated in one process

# The flake `eval_flake_outputs` evaluates: its only input is the flake asked for (set with
# --override-input), its output `outputs` is all that flake's outputs. Nix 2.8 has no installable for a
# flake's outputs as a whole, and `builtins.getFlake` of an unlocked flake needs --impure, which would
# let the flake read this machine's environment (getEnv, currentSystem, ~/.config/nixpkgs): its result
# could differ from what `nix build` makes. Locked as an input, the flake keeps its own flake.lock for
# its inputs and its `follows`; this flake's lock file is never written (--no-write-lock-file).
OUTPUTS_FLAKE = """\
# fleet_sdk.tools.nix: all outputs of the flake given with `--override-input flake REF`
{
  inputs.flake.url = "path:/var/empty";
  outputs = { self, flake }: { outputs = flake; };
}
"""

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


def eval_file(
    runner: Runner,
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
    return _evaluate(runner, argv, subject, f"fix {path.name} (or the attribute path) so that it evaluates", timeout)


def eval_expr(runner: Runner, expr: str, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """The value of the Nix expression `expr` as JSON data (a function is called with its defaults)."""
    subject = f"evaluating the Nix expression {expr[:60]!r}" + ("…" if len(expr) > 60 else "")
    argv: list[str | Path] = [NIX_INSTANTIATE, *EVAL_FLAGS, "--expr", expr]
    return _evaluate(runner, argv, subject, "fix the expression so that it evaluates", timeout)


def _evaluate(runner: Runner, argv: list[str | Path], subject: str, advice: str, timeout: float) -> Any:
    try:
        done = runner.run(argv, timeout=timeout)
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


def flake_outputs_argv(flake: str, apply: str, outputs_flake: Path) -> list[str]:
    """`nix eval` of `apply` over all outputs of `flake`, through OUTPUTS_FLAKE in the folder `outputs_flake`."""
    return [
        NIX, *FLAKE_FEATURES, "eval", "--json", f"path:{outputs_flake}#outputs", "--apply", apply,
        "--override-input", "flake", flake, "--no-write-lock-file",
    ]  # fmt: skip


def eval_flake_outputs(runner: Runner, flake: str, apply: str, *, timeout: float = FLAKE_EVAL_TIMEOUT) -> Any:
    """The value of `apply` (a Nix function) called with all outputs of `flake` (nixosConfigurations,
    darwinConfigurations … alike), as JSON data: one `nix eval` in pure mode. A failed evaluation raises
    the CommandError (`error_tail` of its stderr is Nix's message); output that is not JSON a NixError."""
    with tempfile.TemporaryDirectory(prefix="fleet-flake-outputs-") as folder:
        (Path(folder) / "flake.nix").write_text(OUTPUTS_FLAKE)
        done = runner.run(flake_outputs_argv(flake, apply, Path(folder)), timeout=timeout)
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise NixError(f"evaluating {flake}", "nix eval printed no JSON", "check the function applied") from None


NIX_STORE = "nix-store"
REALISE_TIMEOUT = 3600.0  # building what a derivation needs, downloads included


def realise_argv(drv: str) -> list[str]:
    """`nix-store --realise` of the store derivation `drv` (Nix 2.8 and later alike): builds it unless
    its outputs are there, and prints their paths."""
    if not drv.startswith("/nix/store/") or not drv.endswith(".drv"):
        raise FleetError(f"nix-store --realise: {drv!r} is not a store derivation (/nix/store/….drv)")
    return [NIX_STORE, "--realise", drv]


def realise(runner: Runner, drv: str, *, timeout: float = REALISE_TIMEOUT) -> str:
    """The output path of `drv`, a derivation with one output, built here if it is not in the store. A
    failed build raises the CommandError (`build_error_tail` of its stderr is the builder's log and
    Nix's message); output that is not one store path a NixError."""
    done = runner.run(realise_argv(drv), timeout=timeout)
    paths = [line for line in done.stdout.decode(errors="replace").split() if line.startswith("/nix/store/")]
    if len(paths) != 1:
        raise NixError(
            f"building {drv}",
            f"nix-store printed {len(paths)} store paths, not one",
            "give a derivation with exactly one output",
        )
    return paths[0]


def realise_all(runner: Runner, drvs: Sequence[str], *, timeout: float = REALISE_TIMEOUT) -> dict[str, str]:
    """The output paths of single-output derivations `drvs`, from ONE `nix-store --realise`, which
    prints them in the order given. Any failure raises as `realise` does: realise them one by one
    to learn which."""
    if not drvs:
        return {}
    args = [NIX_STORE, "--realise", *(realise_argv(d)[2] for d in drvs)]
    done = runner.run(args, timeout=timeout)
    paths = [line for line in done.stdout.decode(errors="replace").split() if line.startswith("/nix/store/")]
    if len(paths) != len(drvs):
        raise NixError(
            f"building {len(drvs)} derivations",
            f"nix-store printed {len(paths)} store paths",
            "give derivations with exactly one output",
        )
    return dict(zip(drvs, paths, strict=True))


def build_error_tail(stderr: str, lines: int = 15) -> str:
    """What a failed build printed: the builder's log and Nix's error, without warnings and the lists
    of what would be built or fetched; at most its last `lines`."""
    kept: list[str] = []
    listing = False
    for line in stderr.strip().splitlines():
        if line.startswith(("these ", "this ")) and line.rstrip().endswith(":"):
            listing = True  # "these 2 derivations will be built:" and the paths below it
            continue
        if listing and line.startswith("  /nix/store/"):
            continue
        listing = False
        if line.startswith("warning:") or line.startswith("building '") or "--show-trace" in line:
            continue
        kept.append(line.rstrip())
    return "\n".join(kept[-lines:]).strip() or "nix-store failed without a message"


def error_tail(stderr: str, lines: int = 15) -> str:
    """Nix's error message in `stderr`, from its first `error:` line (the notes before it, warnings and
    lock file changes, dropped) to its end, without the --show-trace hint; at most its last `lines`."""
    kept = stderr.strip().splitlines()
    start = next((i for i, line in enumerate(kept) if line.startswith("error:")), 0)
    message = [line.rstrip() for line in kept[start:] if "--show-trace" not in line]
    text = "\n".join(message[-lines:]).strip()
    return text.removeprefix("error: ") or "nix failed without a message"


def store_url(target: str, *, scheme: str = "ssh-ng", settings: Mapping[str, str] | None = None) -> str:
    """The Nix store URL of `target` ([user@]host[:port]), e.g. `ssh-ng://root@web1?compress=true`.
    `settings` are store settings, percent-encoded (`remote-store=local?root=/mnt` for an install)."""
    t = ssh.parse_target(target)
    host = f"[{t.host}]" if ":" in t.host else t.host  # Nix 2.31 and later need an IPv6 host bracketed
    query = urlencode(list((settings or {}).items()), quote_via=quote)
    return f"{scheme}://{t.user}@{host}" + (f"?{query}" if query else "")


def nix_sshopts(target: str, identity_file: Path | None = None, ssh_options: Sequence[str] = ssh.OPTIONS) -> str:
    """NIX_SSHOPTS for `target`: ssh's options, its port and identity file, joined by spaces."""
    opts = ssh.options(ssh.parse_target(target), identity_file, ssh_options)
    if bad := [o for o in opts if not o or any(c.isspace() for c in o)]:
        raise FleetError(
            f"ssh options {bad} for {target}: Nix splits NIX_SSHOPTS at whitespace; use paths without spaces"
        )
    return " ".join(opts)


def copy_argv(path: str, to: str, *, substitute_on_destination: bool = False, check_sigs: bool = True) -> list[str]:
    """`nix copy` of the closure of the store path `path` to the store URL `to`."""
    if not path.startswith("/"):
        raise FleetError(f"nix copy: {path!r} is not a store path (an absolute path such as /nix/store/…)")
    argv = [NIX, "--extra-experimental-features", "nix-command", "copy", "--to", to]
    if substitute_on_destination:  # the target fetches what it can from its substituters itself
        argv.append("--substitute-on-destination")
    if not check_sigs:  # ssh-ng as root: unsigned paths are refused without it (deploy.md §6)
        argv.append("--no-check-sigs")
    return [*argv, "--", path]


def copy_closure(
    runner: Runner,
    path: str,
    target: str,
    *,
    identity_file: Path | None = None,
    ssh_options: Sequence[str] = ssh.OPTIONS,
    scheme: str = "ssh-ng",
    settings: Mapping[str, str] | None = None,
    substitute_on_destination: bool = False,
    check_sigs: bool = True,
    timeout: float = COPY_TIMEOUT,
) -> CmdResult:
    """Copy `path` with everything it references to the store of `target` ([user@]host[:port])."""
    to = store_url(target, scheme=scheme, settings=settings)
    return runner.run(
        copy_argv(path, to, substitute_on_destination=substitute_on_destination, check_sigs=check_sigs),
        env={"NIX_SSHOPTS": nix_sshopts(target, identity_file, ssh_options)},
        timeout=timeout,
        hint=f"check that {target} is reachable over ssh and that its user may add paths to its store "
        "(root, a trusted user, or signed paths)",
    )
