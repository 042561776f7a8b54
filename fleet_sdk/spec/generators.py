"""Generators of vars (secrets and public values), as clan declares them (reference/clan.md §1).

A generator writes its declared files into `$out`, from its dependencies' files (`$in/<dep>/<file>`)
and prompted values (`$prompts/<p>`). It is either a bash `script` run in a sandbox with the tools it
names, or a Python function (`python`) for built-ins. Files land in the fleet repository in clan's
layout: secrets as sops documents, public values as plain `value` files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fleet_sdk.errors import SpecError

NeededFor = Literal["partitioning", "activation", "users", "services"]
PromptType = Literal["line", "hidden", "multiline", "multiline-hidden"]
# Generator, file and prompt names are path components of the store (vars/<…>/<gen>/<file>/) and of
# $in/$out/$prompts: no '/', and no leading '.', which would make '.', '..' or a name clashing with
# the store's own `.validation-hash`.
NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
NAME_RULE = "use letters, digits, '.', '_' and '-', not starting with '.'"
# POSIX user and group names (useradd's rule), as sops-nix sets a deployed file's owner and group
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\$?$")

# A Python generator: called with (inputs, prompts, out) where inputs[dep][file] are the
# dependency files' bytes, prompts[name] the prompted values, and out the directory to write into.
PythonGenerator = Callable[[dict[str, dict[str, bytes]], dict[str, str], Path], None]


class GeneratorFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    secret: bool = True
    deploy: bool = True
    needed_for: NeededFor = "services"
    owner: str = "root"
    group: str = "root"
    mode: str = "0400"


class Prompt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str | None = None
    type: PromptType = "line"
    persist: bool = False


class Generator(BaseModel):
    """One generator. `share=True` generators are generated once for the whole fleet."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    files: tuple[GeneratorFile, ...] = ()
    prompts: tuple[Prompt, ...] = ()
    dependencies: tuple[str, ...] = ()
    share: bool = False
    validation: Any = None  # JSON scalars or objects (two levels at most), no lists; a change regenerates
    script: str | None = None
    runtime_inputs: tuple[str, ...] = ()  # programs the script needs, looked up on the host's PATH
    python: PythonGenerator | None = Field(default=None, exclude=True)
    # Declared in the flake (clan.core.vars.generators): the .drv of its `finalScript`, realised and
    # run in place of `script`, and its `validationHash` as Nix computed it (its `validation` value
    # is not evaluated). `origin` says where it was declared, for messages and `fleet plan`.
    final_script: str | None = None
    nix_validation_hash: str | None = None
    origin: str = "python"

    @model_validator(mode="after")
    def _check(self) -> Generator:
        problems = [f"generator {self.name!r}: {p}" for p in _generator_problems(self)]
        if problems:
            raise SpecError(problems)
        return self

    @property
    def all_files(self) -> tuple[GeneratorFile, ...]:
        """Declared files plus one per persisted prompt (a secret, as clan makes them)."""
        declared = {f.name for f in self.files}
        persisted = tuple(GeneratorFile(name=p.name) for p in self.prompts if p.persist and p.name not in declared)
        return self.files + persisted

    @property
    def validation_hash(self) -> str | None:
        """sha256 of Nix's builtins.toJSON of `validation` (clan.md §1.4); None without validation.
        A flake generator's is the one Nix computed."""
        if self.final_script is not None:
            return self.nix_validation_hash
        if self.validation is None:
            return None
        text = json.dumps(self.validation, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def definition(self) -> dict[str, Any]:
        """What makes two declarations of a shared generator the same (clan.md §4.3), and what the
        graph's trigger hashes: files (without owner/group/mode), prompts, dependencies, validation,
        and the script (or the Python function's qualified name)."""
        return {
            "files": sorted((f.name, f.secret, f.deploy, f.needed_for) for f in self.all_files),
            "prompts": sorted((p.name, p.type, p.persist) for p in self.prompts),
            "dependencies": sorted(self.dependencies),
            "validation": self.validation_hash,
            "share": self.share,
            "script": self.script,
            "final_script": self.final_script,
            "runtime_inputs": list(self.runtime_inputs),
            "python": f"{self.python.__module__}.{self.python.__qualname__}" if self.python else None,
        }


def _generator_problems(g: Generator) -> list[str]:
    problems = []
    if not NAME.match(g.name):
        problems.append(f"name: {NAME_RULE}")
    if sum(x is not None for x in (g.script, g.python, g.final_script)) != 1:
        problems.append("give exactly one of script (bash), python (a function) or final_script (a flake's .drv)")
    if g.final_script is not None and not re.fullmatch(r"/nix/store/[0-9a-z]{32}-[^/]+\.drv", g.final_script):
        problems.append(f"final_script: {g.final_script!r} is not a store derivation (/nix/store/…drv)")
    if g.nix_validation_hash is not None and not re.fullmatch(r"[0-9a-f]{64}", g.nix_validation_hash):
        problems.append("nix_validation_hash: not a lower-case hex sha256")
    if not g.all_files:
        problems.append("files: declare at least one file the generator writes")
    names = [f.name for f in g.files]
    for name in names:
        if not NAME.match(name):
            problems.append(f"files: {name!r}: {NAME_RULE}")
        if names.count(name) > 1:
            problems.append(f"files: {name!r} is declared twice")
    for f in g.files:
        if not re.fullmatch(r"[0-7]{4}", f.mode):
            problems.append(f"files.{f.name}.mode: {f.mode!r} is not four octal digits like 0400")
        for field, account in (("owner", f.owner), ("group", f.group)):
            if not _ACCOUNT.match(account):
                problems.append(f"files.{f.name}.{field}: {account!r} is not a user or group name (e.g. root, nginx)")
    prompt_names = [p.name for p in g.prompts]
    for name in prompt_names:
        if not NAME.match(name):
            problems.append(f"prompts: {name!r}: {NAME_RULE}")
        elif prompt_names.count(name) > 1:
            problems.append(f"prompts: {name!r} is declared twice")
    if g.name in g.dependencies:
        problems.append("dependencies: a generator cannot depend on itself")
    if not _valid_validation(g.validation):
        problems.append("validation: use JSON scalars or objects (at most two levels), no lists")
    return problems


def _valid_validation(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, dict) and depth < 2:
        return all(isinstance(k, str) and _valid_validation(v, depth + 1) for k, v in value.items())
    return False


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as [a, b, …, a], or None. `edges[n]` are the nodes n depends on."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in edges.get(node, []):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None
