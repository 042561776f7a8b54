"""Generators declared in the flake: each machine's `clan.core.vars.generators` (reference/clan.md §1),
as fleet_sdk Generators whose script is clan's `finalScript` (its .drv, realised when it runs).

from fleet_sdk.vars.flake import flake_generators
declared = flake_generators(LOCAL, "/srv/fleet", {"web1": "nixos", "mac": "darwin"})
declared["web1"]   # (Generator(name="openssh", …, final_script="/nix/store/…-generator-openssh.drv",
                   #            nix_validation_hash=…, origin="flake"), …)

The attributes are `nixosConfigurations.<m>.config.clan.core.vars.generators` and
`darwinConfigurations.<m>.config.clan.core.vars.generators`, read for every machine asked in one `nix
eval` of the flake (tools.nix.eval_flake_outputs, as the closure probe's), which picks out of each
generator only what fleet_sdk uses: share, dependencies, files.<f>.{secret, deploy, neededFor, owner,
group, mode}, prompts.<p>.{type, persist, description}, validationHash and finalScript.drvPath. Never a
file's `value` or `path`, which clan makes throw until the vars are generated. A machine whose
configuration has no clan vars module (no `clan.core.vars.generators`), or that the flake does not
have, declares nothing. Evaluating `drvPath` writes the generator's .drv into the Nix store.

Each generator is evaluated under `builtins.tryEval`, so a generator that throws (as the module system
does for a wrong option) does not hide the others; it is then evaluated alone, without tryEval, for
Nix's message, and NixError names the machine and the generator. An error tryEval does not catch (a
missing attribute, a type error) fails the whole evaluation: each machine is then evaluated alone, and
the error names the machines that fail, with Nix's message (its location says where).

The result is cached like the closure probe's (fleet_sdk.deploy.flakesource: the flake's source
fingerprint), in `generators/` beside the probe's `closures/`: `<git common dir>/fleet/generators/` for
a flake in a git work tree, `$XDG_CACHE_HOME/fleet/generators/` otherwise. A cached machine whose
.drv files are gone from the store (collected) is evaluated again. A flake that is not on this machine
(`github:…`) is evaluated every time.

What was evaluated becomes Generators in fleet_sdk.vars.flake_model (which also words the errors).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleet_sdk.deploy import flakesource
from fleet_sdk.deploy.probe import KEEP
from fleet_sdk.errors import CommandError, NixError
from fleet_sdk.fs import atomic as fsutil
from fleet_sdk.spec.generators import Generator
from fleet_sdk.spec.machine import MachineClass
from fleet_sdk.tools import nix
from fleet_sdk.tools.runner import Runner
from fleet_sdk.vars.flake_model import failure_error, to_generators

log = logging.getLogger("fleet_sdk.vars.flake")
CACHE_FOLDER = "generators"

# The function applied to the flake's outputs. WANTED: { "<machine>" = { class = "nixos"; only = null
# or "<generator>"; }; … }; GUARD: true to evaluate each generator under tryEval.
_GENERATORS = """\
outputs:
let
  guard = GUARD;
  configurations = class:
    if class == "darwin" then outputs.darwinConfigurations or { } else outputs.nixosConfigurations or { };
  declared = name: class:
    let machines = configurations class; in
    if builtins.hasAttr name machines then machines.${name}.config.clan.core.vars.generators or { } else { };
  names = v: if builtins.isAttrs v then builtins.attrNames v else v;
  file = f: {
    secret = f.secret or true; deploy = f.deploy or true; neededFor = f.neededFor or "services";
    owner = f.owner or "root"; group = f.group or "root"; mode = f.mode or "0400";
  };
  prompt = p: { type = p.type or "line"; persist = p.persist or false; description = p.description or null; };
  drvPath = s: if builtins.isAttrs s && s ? drvPath then s.drvPath else null;
  generator = g: {
    share = g.share or false;
    dependencies = names (g.dependencies or [ ]);
    files = builtins.mapAttrs (_: file) (g.files or { });
    prompts = builtins.mapAttrs (_: prompt) (g.prompts or { });
    validationHash = g.validationHash or null;
    finalScript = drvPath (g.finalScript or null);
  };
  checked = v:
    if guard then
      let r = builtins.tryEval (builtins.deepSeq v v);
      in { ok = r.success; value = if r.success then r.value else null; }
    else { ok = true; value = builtins.deepSeq v v; };
  machine = name: want:
    let
      all = declared name want.class;
      chosen = if want.only == null then all else { ${want.only} = all.${want.only}; };
    in checked (builtins.mapAttrs (_: g: checked (generator g)) chosen);
in
builtins.mapAttrs machine WANTED
"""
FORMAT = hashlib.sha256(_GENERATORS.encode()).hexdigest()[:16]  # a new expression starts a new cache

Raw = dict[str, Any]  # one machine's generators as the expression gives them: name -> fields
Failures = dict[str, dict[str | None, str]]  # machine -> generator (None: the machine) -> Nix's message


def flake_generators(
    runner: Runner,
    flake: str,
    machines: Mapping[str, MachineClass],
    *,
    cache_home: Path | None = None,
    timeout: float = nix.FLAKE_EVAL_TIMEOUT,
) -> dict[str, tuple[Generator, ...]]:
    """Each machine's generators declared in `flake` (`machines`: name -> class), by name, from the
    cache when the source is unchanged, else from one `nix eval` (module doc). `cache_home` replaces
    $XDG_CACHE_HOME for a flake outside a git work tree. Raises NixError naming the machines (and
    generators) that do not evaluate, SpecError naming the machine and generator a declaration fleet_sdk
    refuses."""
    if not machines:
        return {}
    ref, path = _cache_file(runner, flake, cache_home)
    cached = _read(path, ref) if path else {}
    found: dict[str, Raw] = {}
    for m, machine_class in machines.items():
        entry = cached.get(m)
        if entry is not None and entry["class"] == machine_class and _drvs_present(entry["generators"]):
            found[m] = entry["generators"]
    missing = {m: c for m, c in machines.items() if m not in found}
    if missing:
        evaluated, failures = _evaluate(runner, ref, missing, timeout)
        found |= evaluated
        if path and evaluated:
            entries = {**cached, **{m: {"class": machines[m], "generators": g} for m, g in evaluated.items()}}
            _write(path, ref, entries)
        if failures:
            raise failure_error(failures, ref)
    return {m: to_generators(m, found[m]) for m in machines}


def _cache_file(runner: Runner, flake: str, cache_home: Path | None) -> tuple[str, Path | None]:
    """The flake reference for Nix, and the cache file of its source (None: not here, or no git)."""
    source = flakesource.locate(flake)
    if isinstance(source, str):
        log.debug("vars generators not cached: %s", source)
        return flake, None
    # vars/ and sops/ change with every generate when the flake is the fleet repository (clan's
    # layout), yet no generator declaration reads them: left out, a generate keeps the cache warm
    fp = flakesource.fingerprint(runner, source, cache_home, skip=("vars", "sops"))
    if isinstance(fp, str):
        log.debug("vars generators not cached: %s", fp)
        return source.ref, None
    return source.ref, fp.cache_dir.parent / CACHE_FOLDER / f"{fp.digest}.json"


def _evaluate(
    runner: Runner, ref: str, machines: Mapping[str, MachineClass], timeout: float
) -> tuple[dict[str, Raw], Failures]:
    """(machine -> its generators, failures): all machines in one process; only when that fails, one
    process per machine, and one per generator that throws, for Nix's message."""
    wanted = {m: (c, None) for m, c in machines.items()}
    try:
        value = _run(runner, ref, wanted, True, timeout)
    except CommandError as e:
        if len(machines) == 1:
            return {}, {next(iter(machines)): {None: nix.error_tail(e.stderr)}}
        found: dict[str, Raw] = {}
        failures: Failures = {}
        for m, machine_class in machines.items():
            one, failed = _evaluate(runner, ref, {m: machine_class}, timeout)
            found |= one
            failures |= failed
        return found, failures
    return _unpack(runner, ref, machines, value, timeout)


def _unpack(
    runner: Runner, ref: str, machines: Mapping[str, MachineClass], value: Any, timeout: float
) -> tuple[dict[str, Raw], Failures]:
    """The machines' generators from the guarded evaluation; what threw is evaluated alone."""
    found: dict[str, Raw] = {}
    failures: Failures = {}
    for m, machine_class in machines.items():
        entry = _checked(value.get(m) if isinstance(value, dict) else None, ref, m)
        if entry is None:  # the configuration throws before any generator
            failures[m] = {None: _message(runner, ref, {m: (machine_class, None)}, timeout)}
            continue
        raw: Raw = {}
        for name, generator in entry.items():
            fields = _checked(generator, ref, m)
            if fields is None:
                failures.setdefault(m, {})[name] = _message(runner, ref, {m: (machine_class, name)}, timeout)
            else:
                raw[name] = fields
        if m not in failures:
            found[m] = raw
    return found, failures


def _checked(value: Any, ref: str, machine: str) -> dict[str, Any] | None:
    """The `value` of one { ok; value; } the expression gives, None when it threw."""
    if not (isinstance(value, dict) and isinstance(value.get("ok"), bool)):
        raise NixError(
            f"machine {machine}: reading its vars generators in {ref}",
            f"nix eval gave {value!r}",
            "this is a bug of fleet_sdk's vars evaluation: please report it",
        )
    inner = value.get("value")
    return inner if value["ok"] and isinstance(inner, dict) else None


def _message(runner: Runner, ref: str, wanted: Mapping[str, tuple[MachineClass, str | None]], timeout: float) -> str:
    """Nix's message for what threw under tryEval, evaluated alone without it."""
    try:
        _run(runner, ref, wanted, False, timeout)
    except CommandError as e:
        return nix.error_tail(e.stderr)
    return "it throws under builtins.tryEval, but evaluates alone; evaluate it with `nix eval --show-trace`"


def _run(
    runner: Runner, ref: str, wanted: Mapping[str, tuple[MachineClass, str | None]], guard: bool, timeout: float
) -> Any:
    """The expression's value; a CommandError is a failed evaluation (no nix, a timeout: NixError)."""
    entries = " ".join(
        f"{_nix_string(m)} = {{ class = {_nix_string(c)}; only = {'null' if g is None else _nix_string(g)}; }};"
        for m, (c, g) in wanted.items()
    )
    apply = _GENERATORS.replace("GUARD", "true" if guard else "false").replace("WANTED", f"{{ {entries} }}")
    try:
        return nix.eval_flake_outputs(runner, ref, apply, timeout=timeout)
    except CommandError as e:
        subject = f"reading the vars generators of {', '.join(wanted)} in the flake {ref}"
        if e.returncode == 127:
            raise NixError(subject, "nix is not installed", "install Nix (Debian package nix-bin)") from None
        if e.returncode is None:
            raise NixError(
                subject, f"timed out after {timeout:g} s", "check the configurations for endless recursion"
            ) from None
        raise


def _nix_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def _drvs_present(raw: Raw) -> bool:
    """Whether every cached finalScript .drv is still in the store (a collected one is evaluated again)."""
    return all(
        isinstance(g, dict) and (not isinstance(g.get("finalScript"), str) or Path(g["finalScript"]).exists())
        for g in raw.values()
    )


def _read(path: Path, ref: str) -> dict[str, dict[str, Any]]:
    """The cache file's machines, if it is one for `ref` and this expression; anything unreadable is
    an empty cache."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not (isinstance(doc, dict) and doc.get("flake") == ref and doc.get("format") == FORMAT):
        return {}
    machines = doc.get("machines")
    if not isinstance(machines, dict):
        return {}
    return {
        m: e
        for m, e in machines.items()
        if isinstance(e, dict) and isinstance(e.get("class"), str) and isinstance(e.get("generators"), dict)
    }


def _write(path: Path, ref: str, machines: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the cache file at once, then drop the oldest beyond KEEP. A cache that cannot be
    written only costs the next run an evaluation."""
    doc = {"flake": ref, "format": FORMAT, "machines": machines}
    try:
        fsutil.write_atomic(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode(), mode=0o644)
        files = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[KEEP:]:
            with contextlib.suppress(OSError):
                old.unlink()
    except OSError as e:
        log.debug("vars generators cache %s not written: %s", path, e)
