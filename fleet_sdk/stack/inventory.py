"""The fleet as clan's inventory (reference/clan.md §7): `inventory.json` at the root of the fleet
repository, the file clan itself merges into `clan.inventory` (and writes `installedAt` into at
`clan machines install`), so a clan flake sees the fleet's machines and service instances without a
line of Nix.

- `machines.<m>`: `name`, `tags` (as declared, each once), `machineClass`, `description` and
  `deploy.targetHost` when set. Keys fleet_sdk does not write (clan's `installedAt`, `icon`,
  `deploy.buildHost` …) are kept from the file as it is.
- `instances.<i>`: `module.name` (and `module.input` when set) and `roles.<r>` with `machines.<m>`
  and `tags.<t>` as empty attribute sets and the role's `settings` when it has any.
- Machines and instances the fleet no longer has are dropped; other top-level keys (`meta` …) kept.
  `meta` is not written: a flake that sets `clan.meta.name` in Nix would get a conflicting second
  definition.

The text is canonical (sorted keys, 2-space indent, final newline), like machines/<m>/disko.json,
and written atomically, only when it changed, then `git add`-ed (flakes see tracked files only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleet_sdk.errors import ConfigError, SpecError
from fleet_sdk.fs.atomic import write_if_changed
from fleet_sdk.spec import Fleet, Machine, ServiceInstance
from fleet_sdk.tools import git
from fleet_sdk.tools.runner import Runner

INVENTORY_FILE = "inventory.json"
# keys of machines.<m> (and of its deploy) that the export writes; any other is kept
MACHINE_KEYS = ("name", "tags", "machineClass", "description")
DEPLOY_KEYS = ("targetHost",)


def inventory_path(repo: Path) -> Path:
    return repo / INVENTORY_FILE


def read_inventory(path: Path) -> dict[str, Any]:
    """The inventory in `path` as it is ({} when there is none); a ConfigError naming the file when
    it is not a JSON object whose `machines` and `instances` are objects."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{path}: not JSON ({e}); repair it (or remove it) and export again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: holds {type(data).__name__}, not clan's inventory (a JSON object)")
    for key in ("machines", "instances"):
        if not isinstance(data.get(key, {}), dict):
            raise ConfigError(f"{path}: {key}: give an object of name -> entry, not {data[key]!r}")
    for name, entry in data.get("machines", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("deploy", {}), dict):
            raise ConfigError(f"{path}: machines.{name}: give an object (with deploy an object), not {entry!r}")
    return data


def machine_entry(machine: Machine, old: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`machines.<m>`: what the spec says, over the keys of `old` the export does not write."""
    old = old or {}
    entry = {k: v for k, v in old.items() if k not in (*MACHINE_KEYS, "deploy")}
    deploy = {k: v for k, v in (old.get("deploy") or {}).items() if k not in DEPLOY_KEYS}
    entry |= {"name": machine.name, "tags": list(dict.fromkeys(machine.tags)), "machineClass": machine.machine_class}
    if machine.description is not None:
        entry["description"] = machine.description
    if machine.target_host:
        deploy["targetHost"] = machine.target_host
    if deploy:
        entry["deploy"] = deploy
    return entry


def instance_entry(instance: ServiceInstance) -> dict[str, Any]:
    """`instances.<i>`: its module and roles, members named and by tag, as clan resolves them."""
    module: dict[str, Any] = {"name": instance.module_name}
    if instance.input is not None:
        module["input"] = instance.input
    roles: dict[str, Any] = {}
    for name, role in instance.roles.items():
        entry: dict[str, Any] = {}
        if role.machines:
            entry["machines"] = {m: {} for m in role.machines}
        if role.tags:
            entry["tags"] = {t: {} for t in role.tags}
        if role.settings:
            entry["settings"] = _plain(role.settings, f"instance {instance.name!r}: roles.{name}.settings")
        roles[name] = entry
    return {"module": module, "roles": roles}


def _plain(value: Any, where: str) -> Any:
    """`value` as JSON data (what Nix reads from the file); a SpecError naming `where` if it is not."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise SpecError(f"{where}: not JSON data ({e}); give strings, numbers, booleans, lists and mappings") from None


def inventory(fleet: Fleet, existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """clan's inventory of `fleet`, over `existing` (the file as it is, read_inventory)."""
    existing = existing or {}
    old_machines = existing.get("machines") or {}
    doc = {k: v for k, v in existing.items() if k not in ("machines", "instances")}
    doc["machines"] = {m.name: machine_entry(m, old_machines.get(m.name)) for m in fleet.machines}
    doc["instances"] = {i.name: instance_entry(i) for i in fleet.instances}
    return doc


def render(doc: Mapping[str, Any]) -> str:
    """Canonical bytes: sorted keys, 2-space indent, final newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(fleet: Fleet, path: Path) -> str:
    """The text of `path` (an inventory.json) once it holds `fleet`."""
    return render(inventory(fleet, read_inventory(path)))


def write(runner: Runner, path: Path, text: str) -> bool:
    """Write `text` to `path` when it differs (atomically), then `git add` it when it is in a work
    tree. True if written."""
    changed = write_if_changed(path, text.encode(), 0o644, dir_mode=0o755)
    git.add(runner, path.parent, [path])
    return changed
