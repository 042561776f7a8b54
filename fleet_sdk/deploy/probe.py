"""The closure probe: each machine's system (the toplevel's derivation and store path) without building
it, from one `nix eval` of the flake for all machines asked, cached on disk by the flake's source
fingerprint, so an unchanged repository costs no evaluation at all.

from fleet_sdk.deploy.probe import probe_closures
found = probe_closures(LOCAL, "/srv/fleet", {"web1": "nixos", "mac": "darwin"})
found["web1"]   # Closure("web1", drv_path="/nix/store/…-nixos-system-web1.drv", out_path="/nix/store/…")

The systems are `nixosConfigurations.<m>.config.system.build.toplevel` and
`darwinConfigurations.<m>.system`, evaluated together (tools.nix.eval_flake_outputs: pure, as `nix
build` evaluates them). When that evaluation fails, each machine is evaluated alone to find which fail,
and ClosureProbeError names them with the tail of Nix's message; what did evaluate is cached all the same.

The cache is one JSON file per fingerprint (fleet_sdk.deploy.flakesource says what goes in, and where
the files live), written atomically; the machines a later run asks for that it lacks are evaluated
then and added. A flake that is not on this machine (`github:…`) or has no flake.nix, or no `nix`,
gives `Unknown` with the reason, never an error. With stack config `fleet:closureProbe` false nothing is
evaluated: `Unknown` carries the source fingerprint, which then triggers a deploy instead of the
system's store path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet_sdk.deploy import flakesource
from fleet_sdk.deploy.model import MachineClass
from fleet_sdk.errors import ClosureProbeError, CommandError, ConfigError, NixError
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.tools import nix
from fleet_sdk.tools.runner import Runner

log = logging.getLogger("fleet_sdk.probe")
PROBE_KEY = "fleet:closureProbe"
KEEP = 64  # cache files kept per folder, the newest

# The function applied to the flake's outputs; WANTED becomes { "<machine>" = "<class>"; … }.
_TOPLEVELS = """\
outputs:
let
  toplevel = name: class:
    let
      configurations = if class == "darwin" then "darwinConfigurations" else "nixosConfigurations";
      machines = outputs.${configurations} or { };
      system = machines.${name};
      top = if class == "darwin" then system.system else system.config.system.build.toplevel;
    in
    if builtins.hasAttr name machines then { drv = top.drvPath; out = top.outPath; }
    else throw "the flake has no ${configurations}.${name}";
in
builtins.mapAttrs toplevel WANTED
"""


@dataclass(frozen=True)
class Closure:
    """A machine's system as the flake evaluates it: its toplevel's derivation and store path."""

    machine: str
    drv_path: str
    out_path: str

    @property
    def trigger(self) -> str:
        """What changes when the machine needs a deploy: its system's store path."""
        return self.out_path

    def to_json(self) -> dict[str, str]:
        return {"drvPath": self.drv_path, "outPath": self.out_path}


@dataclass(frozen=True)
class Unknown:
    """A machine whose system is not known here, and why. `fingerprint` is the flake's source
    fingerprint when the source is here but not evaluated (fleet:closureProbe false)."""

    machine: str
    reason: str
    fingerprint: str | None = None

    @property
    def trigger(self) -> str | None:
        """The source fingerprint (any change of the flake's source), or None: nothing to key on."""
        return f"source:{self.fingerprint}" if self.fingerprint else None

    def to_json(self) -> dict[str, str]:
        return {"unknown": self.reason} | ({"fingerprint": self.fingerprint} if self.fingerprint else {})


Probed = Closure | Unknown


def probe_enabled(values: Mapping[str, str]) -> bool:
    """Stack config fleet:closureProbe (default true)."""
    raw = values.get(PROBE_KEY, "true").strip().lower()
    if raw not in ("true", "false"):
        raise ConfigError(f"{PROBE_KEY}: expected true or false, got {values[PROBE_KEY]!r}")
    return raw == "true"


def stack_flake(settings: StackSettings) -> str:
    """The stack's flake reference (fleet:flake), a relative path taken from the fleet repository."""
    return str(settings.repo / settings.flake) if settings.flake.startswith(".") else settings.flake


def probe_stack(runner: Runner, settings: StackSettings, machines: Mapping[str, MachineClass]) -> dict[str, Probed]:
    """`probe_closures` of the stack's flake, as its config (fleet:flake, fleet:closureProbe) says."""
    return probe_closures(runner, stack_flake(settings), machines, enabled=probe_enabled(settings.values))


def toplevel(machine: str, machine_class: MachineClass) -> str:
    """The attribute path of the machine's system among the flake's outputs."""
    if machine_class == "darwin":
        return f'darwinConfigurations."{machine}".system'
    return f'nixosConfigurations."{machine}".config.system.build.toplevel'


def probe_closures(
    runner: Runner,
    flake: str,
    machines: Mapping[str, MachineClass],
    *,
    enabled: bool = True,
    cache_home: Path | None = None,
    timeout: float = nix.FLAKE_EVAL_TIMEOUT,
) -> dict[str, Probed]:
    """Each machine's system (`machines`: name -> class) in `flake`: from the cache when the source is
    unchanged, else from one `nix eval` (module doc). `cache_home` replaces $XDG_CACHE_HOME for a
    flake outside a git work tree. Raises ClosureProbeError naming the machines that do not evaluate."""
    if not machines:
        return {}
    source = flakesource.locate(flake)
    if isinstance(source, str):
        return {m: Unknown(m, source) for m in machines}
    fp = flakesource.fingerprint(runner, source, cache_home)
    if isinstance(fp, str):
        return {m: Unknown(m, fp) for m in machines}
    if not enabled:
        reason = f"not evaluated ({PROBE_KEY} is false); the flake's source fingerprint stands for it"
        return {m: Unknown(m, reason, fp.digest) for m in machines}
    path = fp.cache_dir / f"{fp.digest}.json"
    cached = _read(path, source.ref)
    found: dict[str, Probed] = {}
    for m, machine_class in machines.items():
        entry = cached.get(m)
        if entry is not None and entry["attr"] == toplevel(m, machine_class):
            found[m] = Closure(m, entry["drvPath"], entry["outPath"])
    missing = {m: c for m, c in machines.items() if m not in found}
    if missing:
        evaluated, failures = _evaluate(runner, source.ref, missing, timeout)
        found |= evaluated
        new = {m: r for m, r in evaluated.items() if isinstance(r, Closure)}
        if new:
            _write(path, source.ref, {**cached, **{m: _entry(r, machines[m]) for m, r in new.items()}})
        if failures:
            raise ClosureProbeError(failures, source.ref)
    return {m: found[m] for m in machines}


def _evaluate(
    runner: Runner, ref: str, machines: Mapping[str, MachineClass], timeout: float
) -> tuple[dict[str, Probed], dict[str, str]]:
    """(what evaluated, machine -> Nix's message for those that did not): all in one process; one
    process per machine only after that failed, to tell which fail."""
    try:
        return _closures(nix.eval_flake_outputs(runner, ref, _apply(machines), timeout=timeout), machines, ref), {}
    except CommandError as e:
        if e.returncode == 127:
            reason = "nix is not installed (Debian package nix-bin): the systems are not evaluated"
            return {m: Unknown(m, reason) for m in machines}, {}
        if e.returncode is None:
            raise NixError(
                f"evaluating the systems of {', '.join(machines)} in {ref}",
                f"timed out after {timeout:g} s",
                "check the configurations for endless recursion",
            ) from None
        if len(machines) == 1:
            return {}, {next(iter(machines)): nix.error_tail(e.stderr)}
    found: dict[str, Probed] = {}
    failures: dict[str, str] = {}
    for m, machine_class in machines.items():
        one, failed = _evaluate(runner, ref, {m: machine_class}, timeout)
        found |= one
        failures |= failed
    return found, failures


def _apply(machines: Mapping[str, MachineClass]) -> str:
    wanted = " ".join(f"{_nix_string(m)} = {_nix_string(c)};" for m, c in machines.items())
    return _TOPLEVELS.replace("WANTED", f"{{ {wanted} }}")


def _nix_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def _closures(value: Any, machines: Mapping[str, MachineClass], ref: str) -> dict[str, Probed]:
    found: dict[str, Probed] = {}
    for m in machines:
        entry = value.get(m) if isinstance(value, dict) else None
        drv, out = (entry.get("drv"), entry.get("out")) if isinstance(entry, dict) else (None, None)
        if not (isinstance(drv, str) and drv.startswith("/") and isinstance(out, str) and out.startswith("/")):
            raise NixError(
                f"evaluating {toplevel(m, machines[m])} in {ref}",
                f"nix eval gave no store paths for it: {entry!r}",
                "this is a bug of fleet_sdk's closure probe: please report it",
            )
        found[m] = Closure(m, drv, out)
    return found


def _entry(closure: Closure, machine_class: MachineClass) -> dict[str, str]:
    return {"attr": toplevel(closure.machine, machine_class), **closure.to_json()}


def _read(path: Path, ref: str) -> dict[str, dict[str, str]]:
    """The cache file's machines, if it is one for `ref`; anything unreadable is an empty cache."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    machines = doc.get("machines") if isinstance(doc, dict) and doc.get("flake") == ref else None
    if not isinstance(machines, dict):
        return {}
    keys = ("attr", "drvPath", "outPath")
    return {
        m: {k: e[k] for k in keys}
        for m, e in machines.items()
        if isinstance(e, dict) and all(isinstance(e.get(k), str) for k in keys)
    }


def _write(path: Path, ref: str, machines: Mapping[str, Mapping[str, str]]) -> None:
    """Replace the cache file at once (a reader sees the old file or the new one), then drop the
    oldest files beyond KEEP. A cache that cannot be written only costs the next run an evaluation."""
    text = json.dumps({"flake": ref, "machines": machines}, indent=2, sort_keys=True) + "\n"
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        tmp = None
        _prune(path.parent)
    except OSError as e:
        log.debug("closure cache %s not written: %s", path, e)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _prune(folder: Path) -> None:
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()
