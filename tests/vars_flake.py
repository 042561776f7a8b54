"""A flake declaring clan vars generators, without nixpkgs or clan-core, for the tests of generators
declared in the flake (fleet_sdk.vars.flake and its users).

    ref = write_vars_flake(tmp_path / "flake", {
        "web": MachineSpec(generators=(GeneratorSpec("ssh", files=(FileSpec("key"), FileSpec("pub", secret=False))),)),
        "mac": MachineSpec("darwin", generators=(GeneratorSpec("token", share=True, files=(FileSpec("t"),)),)),
        "plain": MachineSpec(clan_vars=False),           # config = { }: no clan vars module
    })
    # ref == "path:<tmp_path>/flake"

The flake's outputs are `nixosConfigurations.<m>.config.clan.core.vars.generators.<g>` (darwin:
`darwinConfigurations.<m>.config…`): plain attribute sets shaped like clan's options (reference/clan.md
§1; name, share, dependencies, files.<f>.{name, secret, deploy, neededFor, owner, group, mode,
restartUnits}, prompts.<p>.{name, type, persist, description}, runtimeInputs, script, validation,
validationHash, finalScript), not a module-system evaluation. As clan: a persisted prompt declares its
file (a secret), a file's group defaults to "wheel" on darwin, a prompt's description to its name,
`validationHash` is `builtins.hashString "sha256" (builtins.toJSON validation)` (null without
validation), and a file's `value` and `path` throw (clan's do before `clan vars generate`), so an
evaluation that reads them fails as it would on a real clan flake.

`finalScript` is a `builtins.derivation` (builder /bin/sh, PATH unset) producing an executable bash
script doing what clan's does (§1.5): `set -euo pipefail`, PATH (/usr/bin:/bin here, clan's is the
runtime inputs and coreutils), copies of persisted prompts `$prompts/<p>` to `$out/<p>`, then the
script. Without a `script`, the generator's script writes each declared file (not the persisted
prompts) with `<generator>/<file>`, then ` <content>` of each `$in/<dep>/<file>` and ` <p>=<value>`
of each prompt not persisted; `behaviour` changes that: "fail" (exits 3 after writing), "missing"
(the first such file not written), "undeclared" (an extra `$out/undeclared` too).

`raw` replaces any attribute of a generator (or `MachineSpec.raw` the whole `config`) with Nix text,
e.g. `raw={"finalScript": 'throw "no runtime input"'}` for a generator that does not evaluate.
`touch_unrelated(folder)` changes a file no generator reads (the flake's source fingerprint changes).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleet_sdk.spec import Generator, GeneratorFile, Prompt
from fleet_sdk.testing.fakesystem import nix_env, nix_system

Behaviour = Literal["ok", "fail", "missing", "undeclared"]


@dataclass(frozen=True)
class FileSpec:
    """files.<name>; `group` None is clan's default: root, wheel on darwin."""

    name: str
    secret: bool = True
    deploy: bool = True
    needed_for: str = "services"
    owner: str = "root"
    group: str | None = None
    mode: str = "0400"


@dataclass(frozen=True)
class PromptSpec:
    """prompts.<name>; `description` None is clan's default: the name."""

    name: str
    type: str = "line"
    persist: bool = False
    description: str | None = None


@dataclass(frozen=True)
class GeneratorSpec:
    """clan.core.vars.generators.<name>. `script` None: the default script (module doc)."""

    name: str
    files: Sequence[FileSpec] = ()
    prompts: Sequence[PromptSpec] = ()
    dependencies: Sequence[str] = ()
    share: bool = False
    validation: Any = None
    script: str | None = None
    behaviour: Behaviour = "ok"
    raw: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MachineSpec:
    """One machine: its class, its generators; `clan_vars` False gives `config = { }`; `raw` is Nix
    text for the whole `config` (replacing the rest)."""

    machine_class: Literal["nixos", "darwin"] = "nixos"
    generators: Sequence[GeneratorSpec] = ()
    clan_vars: bool = True
    raw: str | None = None


def write_vars_flake(directory: Path, machines: Mapping[str, MachineSpec]) -> str:
    """Writes `directory`/flake.nix (replacing it) and returns the flake reference `path:<directory>`."""
    directory.mkdir(parents=True, exist_ok=True)
    sections = []
    for attr, cls in (("nixosConfigurations", "nixos"), ("darwinConfigurations", "darwin")):
        entries = "".join(
            f"      {nix_string(m)}.config = {_config(spec)};\n"
            for m, spec in machines.items()
            if spec.machine_class == cls
        )
        sections.append(f"    {attr} = {{\n{entries}    }};\n")
    text = (
        "# Clan vars generators without nixpkgs (tests/vars_flake.py)\n{\n  outputs = _:\n"
        f"  let\n{_LIB}  in {{\n{''.join(sections)}  }};\n}}\n"
    )
    (directory / "flake.nix").write_text(text)
    return f"path:{directory}"


def touch_unrelated(directory: Path, text: str = "an unrelated change\n") -> None:
    """Changes a file of the flake's folder that no generator reads."""
    (directory / "notes.txt").write_text(text)


def final_scripts(ref: str) -> dict[tuple[str, str], str]:
    """(machine, generator) -> the .drv of its finalScript, as Nix evaluates it (one `nix eval`, not
    through fleet_sdk: what the tests compare with)."""
    found: dict[tuple[str, str], str] = {}
    for attr in ("nixosConfigurations", "darwinConfigurations"):
        apply = "cs: builtins.mapAttrs (_: c: builtins.mapAttrs (_: g: g.finalScript.drvPath) " + (
            "(c.config.clan.core.vars.generators or { })) cs"
        )
        argv = ["nix", "eval", "--json", f"{ref}#{attr}", "--apply", apply]
        done = subprocess.run(argv, env=nix_env(), capture_output=True, text=True, check=True)
        for machine, generators in json.loads(done.stdout).items():
            found |= {(machine, g): drv for g, drv in generators.items()}
    return found


def final_script_text(g: GeneratorSpec) -> str:
    """The executable script `finalScript` builds (module doc)."""
    copies = "".join(f'cat "$prompts/{p.name}" > "$out/{p.name}"\n' for p in g.prompts if p.persist)
    script = default_script(g) if g.script is None else g.script
    return f"#!/bin/bash\nset -euo pipefail\n\nPATH=/usr/bin:/bin\n{copies}{script}\n"


def default_script(g: GeneratorSpec) -> str:
    persisted = {p.name for p in g.prompts if p.persist}
    written = [f.name for f in g.files if f.name not in persisted]
    if g.behaviour == "missing":
        written = written[1:]
    lines = []
    for name in written:
        target = f'"$out/{name}"'
        lines.append(f"printf '%s' '{g.name}/{name}' > {target}")
        for dep in g.dependencies:
            lines.append(f'for f in "$in/{dep}"/*; do printf \' %s\' "$(cat "$f")" >> {target}; done')
        for p in g.prompts:
            if not p.persist:
                lines.append(f'printf \' %s=%s\' {p.name} "$(cat "$prompts/{p.name}")" >> {target}')
    if g.behaviour == "undeclared":
        lines.append('printf undeclared > "$out/undeclared"')
    if g.behaviour == "fail":
        lines.append(f"echo 'generator {g.name} fails on purpose' >&2\nexit 3")
    return "\n".join(lines)


def expected_generator(g: GeneratorSpec, final_script: str, machine_class: str = "nixos") -> Generator:
    """The fleet_sdk Generator the flake declares for `g` (its files as clan's module gives them)."""
    return Generator(
        name=g.name,
        files=tuple(
            GeneratorFile(
                name=f.name,
                secret=f.secret,
                deploy=f.deploy,
                needed_for=f.needed_for,  # type: ignore[arg-type]
                owner=f.owner,
                group=_group(f, machine_class),
                mode=f.mode,
            )
            for f in sorted(_all_files(g), key=lambda f: f.name)
        ),
        prompts=tuple(
            Prompt(name=p.name, type=p.type, persist=p.persist, description=p.description or p.name)  # type: ignore[arg-type]
            for p in sorted(g.prompts, key=lambda p: p.name)
        ),
        dependencies=tuple(g.dependencies),
        share=g.share,
        final_script=final_script,
        nix_validation_hash=None if g.validation is None else validation_hash(g.validation),
        origin="flake",
    )


def validation_hash(value: Any) -> str:
    """sha256 of Nix's builtins.toJSON of `value`."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def nix_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${").replace("\n", "\\n")
    return f'"{escaped}"'


# Functions of the flake: clan's derived attributes of a generator.
_LIB = """\
    hash = v: if v == null then null else builtins.hashString "sha256" (builtins.toJSON v);
    script = name: text: builtins.derivation {
      name = "generator-${name}";
      system = SYSTEM;
      builder = "/bin/sh";
      inherit text;
      args = [ "-c" "printf '%s' \\"$text\\" > \\"$out\\" && /bin/chmod 0555 \\"$out\\"" ];
    };
    unset = what: throw "${what} is not generated: run clan vars generate";
""".replace("SYSTEM", nix_string(nix_system()))


def _config(spec: MachineSpec) -> str:
    if spec.raw is not None:
        return spec.raw
    if not spec.clan_vars:
        return "{ }"
    generators = "".join(
        f"          {nix_string(g.name)} = {_generator(g, spec.machine_class)};\n" for g in spec.generators
    )
    return f"{{\n        clan.core.vars.generators = {{\n{generators}        }};\n      }}"


def _generator(g: GeneratorSpec, machine_class: str) -> str:
    validation = "null" if g.validation is None else f"builtins.fromJSON {nix_string(json.dumps(g.validation))}"
    attrs = {
        "name": nix_string(g.name),
        "share": _bool(g.share),
        "dependencies": "[ " + " ".join(nix_string(d) for d in g.dependencies) + " ]",
        "files": "{ " + "".join(f"{nix_string(f.name)} = {_file(f, g, machine_class)}; " for f in _all_files(g)) + "}",
        "prompts": "{ " + "".join(f"{nix_string(p.name)} = {_prompt(p)}; " for p in g.prompts) + "}",
        "runtimeInputs": "[ ]",
        "script": nix_string(default_script(g) if g.script is None else g.script),
        "validation": validation,
        "validationHash": f"hash ({validation})",
        "finalScript": f"script {nix_string(g.name)} {nix_string(final_script_text(g))}",
    }
    attrs |= g.raw
    return "{\n" + "".join(f"            {k} = {v};\n" for k, v in attrs.items()) + "          }"


def _all_files(g: GeneratorSpec) -> list[FileSpec]:
    declared = {f.name for f in g.files}
    return [*g.files, *(FileSpec(p.name) for p in g.prompts if p.persist and p.name not in declared)]


def _group(f: FileSpec, machine_class: str) -> str:
    return f.group if f.group is not None else ("wheel" if machine_class == "darwin" else "root")


def _file(f: FileSpec, g: GeneratorSpec, machine_class: str) -> str:
    what = nix_string(f"{g.name}/{f.name}")
    return (
        f"{{ name = {nix_string(f.name)}; secret = {_bool(f.secret)}; deploy = {_bool(f.deploy)}; "
        f"neededFor = {nix_string(f.needed_for)}; owner = {nix_string(f.owner)}; "
        f"group = {nix_string(_group(f, machine_class))}; mode = {nix_string(f.mode)}; restartUnits = [ ]; "
        f"value = unset {what}; path = unset {what}; }}"
    )


def _prompt(p: PromptSpec) -> str:
    description = nix_string(p.description if p.description is not None else p.name)
    return (
        f"{{ name = {nix_string(p.name)}; type = {nix_string(p.type)}; persist = {_bool(p.persist)}; "
        f"description = {description}; }}"
    )


def _bool(value: bool) -> str:
    return "true" if value else "false"


# -- the acceptance flake's machines (tests/test_vars_flake_acceptance.py; bench/vars.py scales them) --

PASSWORD = "correct horse battery"
BANNER = "welcome to web\nauthorised use only"

CA = GeneratorSpec("ca", share=True, files=(FileSpec("ca", deploy=False), FileSpec("ca.pub", secret=False)))
MESH = GeneratorSpec("mesh", share=True, files=(FileSpec("psk"),))
HOST_KEY = GeneratorSpec("host-key", files=(FileSpec("key"), FileSpec("key.pub", secret=False)), validation={"rev": 1})
CERT = GeneratorSpec("cert", dependencies=("host-key", "ca"), files=(FileSpec("cert", secret=False),))
LOGIN = GeneratorSpec(
    "login",
    prompts=(PromptSpec("password", type="hidden", persist=True), PromptSpec("banner", type="multiline")),
    files=(FileSpec("motd", secret=False),),
)
DISK = GeneratorSpec("disk", files=(FileSpec("luks", needed_for="partitioning"),))
SEED = GeneratorSpec("seed", files=(FileSpec("seed", deploy=False), FileSpec("fingerprint", secret=False)))


def fleet_machines(**changed: tuple[GeneratorSpec, ...]) -> dict[str, MachineSpec]:
    """The flake's machines; `changed` replaces a machine's generators."""
    generators = {
        "web": (CA, MESH, HOST_KEY, CERT, LOGIN, DISK, SEED),
        "db": (CA, MESH, HOST_KEY, CERT),
        "mac": (CA, MESH, HOST_KEY),
    } | changed
    return {m: MachineSpec("darwin" if m == "mac" else "nixos", gens) for m, gens in generators.items()}
