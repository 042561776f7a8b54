"""What `fleet_sdk.vars.flake` evaluated, as fleet_sdk Generators, and its errors.

Each generator's fields as the flake's expression gives them (clan's names: neededFor, validationHash,
finalScript as its .drv path) become a `Generator(…, final_script=<drv>, nix_validation_hash=…,
origin="flake")`. What fleet_sdk refuses raises SpecError naming the machine and the generator
("machine web: generator 'x': files.k.mode: '400' is not four octal digits like 0400").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from pydantic import ValidationError

from fleet_sdk.errors import NixError, SpecError
from fleet_sdk.spec.generators import Generator, GeneratorFile, NeededFor, Prompt, PromptType


def to_generators(machine: str, raw: Mapping[str, Any]) -> tuple[Generator, ...]:
    """The machine's generators (sorted by name) from the evaluated fields."""
    return tuple(to_generator(machine, name, raw[name]) for name in sorted(raw))


def to_generator(machine: str, name: str, fields: Mapping[str, Any]) -> Generator:
    """One generator; SpecError names the machine, the generator and each field refused."""
    problems = _problems(fields)
    if not problems:
        try:
            return _build(name, fields)
        except SpecError as e:
            raise SpecError([f"machine {machine}: {p}" for p in e.problems]) from None
        except ValidationError as e:
            problems = [f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
    raise SpecError([f"machine {machine}: generator {name!r}: {p}" for p in problems])


def _build(name: str, fields: Mapping[str, Any]) -> Generator:
    files = fields["files"]
    prompts = fields["prompts"]
    return Generator(
        name=name,
        files=tuple(
            GeneratorFile(
                name=f,
                secret=files[f]["secret"],
                deploy=files[f]["deploy"],
                needed_for=files[f]["neededFor"],
                owner=files[f]["owner"],
                group=files[f]["group"],
                mode=files[f]["mode"],
            )
            for f in sorted(files)
        ),
        prompts=tuple(
            Prompt(
                name=p,
                type=prompts[p]["type"],
                persist=prompts[p]["persist"],
                description=prompts[p]["description"],
            )
            for p in sorted(prompts)
        ),
        dependencies=tuple(fields["dependencies"]),
        share=fields["share"],
        final_script=fields["finalScript"],
        nix_validation_hash=fields["validationHash"],
        origin="flake",
    )


_FILE_FIELDS = {"secret": bool, "deploy": bool, "neededFor": str, "owner": str, "group": str, "mode": str}
_PROMPT_FIELDS = {"type": str, "persist": bool}


def _problems(fields: Mapping[str, Any]) -> list[str]:
    """What the Generator model would refuse less clearly: types, clan's enums, the finalScript."""
    problems = []
    if not isinstance(fields.get("share"), bool):
        problems.append(f"share: {fields.get('share')!r} is not a boolean")
    deps = fields.get("dependencies")
    if not (isinstance(deps, list) and all(isinstance(d, str) for d in deps)):
        problems.append(f"dependencies: {deps!r} is not a list of generator names")
    if fields.get("validationHash") is not None and not isinstance(fields.get("validationHash"), str):
        problems.append(f"validationHash: {fields.get('validationHash')!r} is not a string")
    if not isinstance(fields.get("finalScript"), str):
        problems.append("finalScript: not a derivation (clan's module makes it one with writeScript); do not set it")
    problems += _entries("files", fields.get("files"), _FILE_FIELDS, "neededFor", get_args(NeededFor))
    problems += _entries("prompts", fields.get("prompts"), _PROMPT_FIELDS, "type", get_args(PromptType))
    prompts = fields.get("prompts")
    if isinstance(prompts, dict):
        for p, entry in prompts.items():
            description = entry.get("description") if isinstance(entry, dict) else None
            if description is not None and not isinstance(description, str):
                problems.append(f"prompts.{p}.description: {description!r} is not a string")
    return problems


def _entries(what: str, value: Any, types: Mapping[str, type], enum_field: str, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(value, dict):
        return [f"{what}: {value!r} is not an attribute set"]
    problems = []
    for name, entry in value.items():
        if not isinstance(entry, dict):
            problems.append(f"{what}.{name}: {entry!r} is not an attribute set")
            continue
        for key, kind in types.items():
            if not isinstance(entry.get(key), kind):
                problems.append(f"{what}.{name}.{key}: {entry.get(key)!r} is not a {kind.__name__}")
        if isinstance(entry.get(enum_field), str) and entry[enum_field] not in allowed:
            problems.append(f"{what}.{name}.{enum_field}: {entry[enum_field]!r} is not one of {', '.join(allowed)}")
    return problems


def failure_error(failures: Mapping[str, Mapping[str | None, str]], flake: str) -> NixError:
    """One NixError for every machine (and generator) that did not evaluate, each with Nix's message."""
    blocks = []
    for machine, by_generator in failures.items():
        for generator, message in by_generator.items():
            who = f"generator {generator!r} does" if generator is not None else "its vars generators do"
            body = "\n".join(f"  {line}" if line else "" for line in message.splitlines())
            blocks.append(f"machine {machine}: {who} not evaluate:\n{body}")
    return NixError(
        "\n".join(blocks),
        "",
        f"fix the configuration in the flake {flake}; `nix eval --show-trace` of the machine's "
        "config.clan.core.vars.generators shows the whole trace",
    )
