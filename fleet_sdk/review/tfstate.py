"""OpenTofu and Terraform state files (format version 4, as `tofu state pull` writes it): the managed
objects they hold, each with its address, id and attributes. Only what the migration needs is read;
attribute values are never shown in messages, since states hold secrets (private keys, tokens)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet_sdk.errors import ConfigError

STATE_VERSION = 4
DECRYPT = (
    "write a decrypted copy with `tofu state pull > terraform.plain.tfstate` (as the state's own wrapper runs tofu)"
)


@dataclass(frozen=True)
class TfObject:
    """One managed object of the state: its address (`module.m.type.name["key"]`) and attributes."""

    address: str
    type: str
    id: str
    attributes: Mapping[str, Any]

    @property
    def name(self) -> str:
        value = self.attributes.get("name")
        return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Skipped:
    address: str
    reason: str


def read_state(path: Path) -> tuple[list[TfObject], list[Skipped]]:
    """The managed objects of a version 4 state, and what is not to import (data sources, deposed
    objects). A file that is not such a state is a ConfigError naming it and the field."""
    raw = path.read_bytes()
    try:
        state = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (offset {e.start}); give the state file tofu writes") from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not JSON (line {e.lineno}, column {e.colno}: {e.msg}); give a tfstate") from e
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: not a Terraform state: expected a JSON object with version and resources")
    if "encrypted_data" in state:
        raise ConfigError(f"{path}: encrypted_data: the state is encrypted (OpenTofu state encryption); {DECRYPT}")
    if state.get("version") != STATE_VERSION:
        raise ConfigError(
            f"{path}: version: {state.get('version')!r} is not supported: fleet reads state format version 4 "
            "(Terraform 0.12 and later, OpenTofu); `tofu state pull` writes it"
        )
    resources = state.get("resources", [])
    if not isinstance(resources, list):
        raise ConfigError(f"{path}: resources: expected a list, got {type(resources).__name__}")
    objects: list[TfObject] = []
    skipped: list[Skipped] = []
    for i, resource in enumerate(resources):
        _read_resource(path, f"resources[{i}]", resource, objects, skipped)
    return objects, skipped


def _field(path: Path, where: str, value: Mapping[str, Any], key: str, kind: type) -> Any:
    found = value.get(key)
    if not isinstance(found, kind) or (kind is str and not found):
        got = "nothing" if found is None else f"a {type(found).__name__}"  # no values: states hold secrets
        want = {"str": "a non-empty string", "list": "a list", "dict": "an object"}[kind.__name__]
        raise ConfigError(f"{path}: {where}.{key}: expected {want}, got {got}; is this a tfstate of version 4?")
    return found


def _read_resource(path: Path, where: str, resource: Any, objects: list[TfObject], skipped: list[Skipped]) -> None:
    if not isinstance(resource, dict):
        raise ConfigError(f"{path}: {where}: expected an object, got {type(resource).__name__}")
    mode = _field(path, where, resource, "mode", str)
    type_ = _field(path, where, resource, "type", str)
    name = _field(path, where, resource, "name", str)
    module = resource.get("module")
    prefix = f"{module}." if isinstance(module, str) and module else ""
    base = f"{prefix}{'data.' if mode == 'data' else ''}{type_}.{name}"
    for j, instance in enumerate(_field(path, where, resource, "instances", list)):
        at = f"{where}.instances[{j}]"
        if not isinstance(instance, dict):
            raise ConfigError(f"{path}: {at}: expected an object, got {type(instance).__name__}")
        key = instance.get("index_key")
        address = base + ("" if key is None else f"[{json.dumps(key)}]")
        if mode != "managed":
            skipped.append(Skipped(address, "a data source: read, not managed; nothing to import"))
            continue
        if instance.get("deposed"):
            skipped.append(Skipped(address, "a deposed object, which tofu destroys on its next apply"))
            continue
        attributes = _field(path, at, instance, "attributes", dict)
        id_ = _field(path, f"{at}.attributes", attributes, "id", str)
        objects.append(TfObject(address, type_, id_, attributes))
