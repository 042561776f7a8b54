"""Per machine, what a plan diff means: its status, resource changes and danger flags.

A machine's resources are those of its component (`machine`) and the shared steps that act on it
(`subject`). Flags, in this order:
- wipe: its server is replaced or deleted (unless that is blocked), or its disk layout changed while
  it is installed (`install.installed_layout`);
- blocked: a protected resource of it would be replaced or deleted, which the engine refuses;
- reboot: an update changes a property its cloud changes with the machine off (serverType,
  machineType; the catalog's REBOOTING);
- secrets: its vars step runs (created, or its trigger changed: its generators changed), or a
  generator is no longer stored; `secrets.regenerate` lists the generators the store lacks;
  `secrets.delivered`: its deploy step runs because the secrets it uploads changed (its secrets
  trigger: e.g. after `fleet vars rotate`), so the machine receives new values;
- network: a ZeroTier step acting on it is created, replaced or deleted, its ZeroTier roles
  change, or (on a controller) a member joins or leaves;
- system: its system's outPath changed (`system.changed` is null when either side is unknown).

A plan document without a field (schema 1, before disko/generators/zerotier/subject) leaves what it
would tell unknown: null, or no flag.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from fleet_sdk.catalog import gcp, hetzner
from fleet_sdk.review.paths import any_contains, parse_path

if TYPE_CHECKING:
    from fleet_sdk.review.diff import Change

FLAGS = ("wipe", "blocked", "reboot", "secrets", "network", "system")
SERVERS = frozenset({hetzner.SERVER_RESOURCE, gcp.INSTANCE_RESOURCE})
REBOOTING: dict[str, tuple[str, ...]] = {**hetzner.REBOOTING, **gcp.REBOOTING}
ZEROTIER_NETWORK = "fleet:zerotier:Network"
VARS_STEP = "command:local:Command"
SECRETS_TRIGGER = "triggers[1]"  # graph.deploy: [closure, secrets, settings]


def machine_entries(old: dict[str, Any], new: dict[str, Any], changes: list[Change]) -> dict[str, dict[str, Any]]:
    """{machine: entry} for every machine of either plan."""
    before: dict[str, Any] = old.get("machines") or {}
    after: dict[str, Any] = new.get("machines") or {}
    owned: dict[str, list[Change]] = defaultdict(list)
    for c in changes:
        if c.owner is not None:
            owned[c.owner].append(c)
    joins, leaves = zerotier_moves(before, after)
    return {
        name: _entry(name, before.get(name), after.get(name), owned[name], joins[name], leaves[name])
        for name in sorted(before.keys() | after.keys())
    }


def _entry(
    name: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    changes: list[Change],
    joins: list[str],
    leaves: list[str],
) -> dict[str, Any]:
    visible = [c for c in changes if c.op != "same"]
    disk, system = disk_change(before, after), system_change(before, after)
    regenerate, runs = secrets_change(name, before, after, changes)
    delivered = secrets_delivered(name, changes)
    flags = resource_flags(visible)
    if disk["changed"] and any((m or {}).get("install", {}).get("installed_layout") for m in (before, after)):
        flags.add("wipe")
    if runs or regenerate or delivered:
        flags.add("secrets")
    if joins or leaves or roles_changed(before, after):
        flags.add("network")
    if system["changed"]:
        flags.add("system")
    if before is None or after is None:
        status = "added" if before is None else "removed"
    else:
        status = "changed" if visible or flags or disk["changed"] else "unchanged"
    return {
        "status": status,
        "danger": [f for f in FLAGS if f in flags],
        "changes": [c.to_json() for c in visible],
        "secrets": {"regenerate": regenerate, "delivered": delivered},
        "disk": disk,
        "system": system,
        "zerotier": {"joins": joins, "leaves": leaves},
    }


def resource_flags(changes: list[Change]) -> set[str]:
    """The flags a machine's resource changes raise (wipe, blocked, reboot, network)."""
    flags: set[str] = set()
    for c in changes:
        if c.blocked:
            flags.add("blocked")
        elif c.type in SERVERS and c.op in ("replace", "delete"):
            flags.add("wipe")
        if c.op == "update" and any(any_contains(REBOOTING.get(c.type, ()), parse_path(p["path"])) for p in c.paths):
            flags.add("reboot")
        if c.op in ("create", "replace", "delete") and ZEROTIER_NETWORK in c.urn.split("::")[2].split("$"):
            flags.add("network")
    return flags


def secrets_change(
    name: str, before: dict[str, Any] | None, after: dict[str, Any] | None, changes: list[Change]
) -> tuple[list[str], bool]:
    """(generators that will be generated, whether the machine's vars step runs). The step runs when
    created or replaced (its trigger hashes the generators' declarations) and generates what the
    store lacks; a generator that was stored and is no longer is listed even when it does not run."""
    step = next((c for c in changes if c.type == VARS_STEP and c.name == f"{name}-vars"), None)
    runs = step is not None and step.op in ("create", "replace")
    # stored null: planned without a repository, unknown
    unstored = sorted(g["name"] for g in (after or {}).get("generators") or () if g.get("stored") is False)
    if runs:
        return unstored, True
    was_stored = {g["name"] for g in (before or {}).get("generators") or () if g.get("stored") is True}
    return [g for g in unstored if g in was_stored], False


def secrets_delivered(name: str, changes: list[Change]) -> bool:
    """Whether the machine's deploy step runs for new secrets: its secrets trigger (graph.deploy's
    second trigger, the digest of the ciphertext it uploads) changes or is known only after apply."""
    step = next((c for c in changes if c.type == VARS_STEP and c.name == f"{name}-deploy"), None)
    if step is None or step.op not in ("update", "replace"):
        return False
    return SECRETS_TRIGGER in {p["path"] for p in step.paths} | set(step.unknown) | set(step.replace_reasons)


def disk_change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    old, new = (before or {}).get("disko"), (after or {}).get("disko")
    old_digest, new_digest = (old or {}).get("digest"), (new or {}).get("digest")
    changed = None if old is None or new is None else old_digest != new_digest
    return {"changed": changed, "digest": {"old": old_digest, "new": new_digest}}


def system_change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """outPath decides (input-addressed: known from evaluation); a drvPath change with the same
    outPath is a rebuild of the same output. Unknown on either side: changed is null."""

    def known(machine: dict[str, Any] | None) -> dict[str, Any]:
        system = (machine or {}).get("system")
        return system if isinstance(system, dict) and system.get("outPath") else {}

    old, new = known(before), known(after)
    return {
        "changed": old["outPath"] != new["outPath"] if old and new else None,
        "drvPath": {"old": old.get("drvPath"), "new": new.get("drvPath")},
        "outPath": {"old": old.get("outPath"), "new": new.get("outPath")},
    }


def _roles(machine: dict[str, Any] | None) -> dict[str, str] | None:
    """{instance: role}; {} for a machine absent from the plan, None when the plan does not say."""
    if machine is None:
        return {}
    roles = machine.get("zerotier")
    return dict(roles) if isinstance(roles, dict) else None


def roles_changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    old, new = _roles(before), _roles(after)
    return old is not None and new is not None and old != new


def _controllers(machines: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in sorted(machines):
        for instance, role in (_roles(machines[name]) or {}).items():
            if role == "controller":
                found.setdefault(instance, name)
    return found


def zerotier_moves(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """({machine: joins}, {machine: leaves}): a machine lists the instances it joins or leaves, the
    instance's controller lists `<instance>/<member>` for each member that joins or leaves."""
    joins: dict[str, list[str]] = defaultdict(list)
    leaves: dict[str, list[str]] = defaultdict(list)
    controllers = {"new": _controllers(after), "old": _controllers(before)}
    for name in sorted(before.keys() | after.keys()):
        old, new = _roles(before.get(name)), _roles(after.get(name))
        if old is None or new is None:
            continue
        for side, instances, found in (
            ("new", new.keys() - old.keys(), joins),
            ("old", old.keys() - new.keys(), leaves),
        ):
            for instance in sorted(instances):
                found[name].append(instance)
                controller = controllers[side].get(instance)
                if controller is not None and controller != name:
                    found[controller].append(f"{instance}/{name}")
    for lists in (joins, leaves):
        for moves in lists.values():
            moves.sort()
    return joins, leaves


SYMBOLS = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}


def _value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 48 else text[:45] + "..."


def _change_lines(change: dict[str, Any]) -> list[str]:
    head = f"  {SYMBOLS[change['op']]:<2} {change['type']}::{change['name']}"
    if change["protect"] and change["op"] in ("replace", "delete"):
        head += "  BLOCKED (protected)"
    lines = [head]
    for p in change["paths"]:
        replaces = " (replaces)" if p["kind"].endswith("-replace") else ""
        lines.append(f"       {p['path']}: {_value(p['old'])} -> {_value(p['new'])}{replaces}")
    if change["unknown"]:
        lines.append(f"       known after apply: {', '.join(change['unknown'])}")
    if change["note"]:
        lines.append(f"       {change['note']}")
    return lines


def _machine_lines(name: str, entry: dict[str, Any]) -> list[str]:
    flags = " ".join(f.upper() if f in ("wipe", "blocked") else f for f in entry["danger"])
    lines = [f"{name}  {entry['status']}" + (f"  [{flags}]" if flags else "")]
    for change in entry["changes"]:
        lines += _change_lines(change)
    if regenerate := entry["secrets"]["regenerate"]:
        lines.append(f"  secrets generated: {', '.join(regenerate)}")
    if entry["secrets"].get("delivered"):
        lines.append("  secrets delivered: its deploy uploads new values")
    if entry["disk"]["changed"]:
        lines.append(f"  disk layout: {entry['disk']['digest']['old']} -> {entry['disk']['digest']['new']}")
    if entry["system"]["changed"]:
        lines.append(f"  system: {entry['system']['outPath']['old']} -> {entry['system']['outPath']['new']}")
    for verb in ("joins", "leaves"):
        if entry["zerotier"][verb]:
            lines.append(f"  zerotier {verb}: {', '.join(entry['zerotier'][verb])}")
    return lines


def _side(side: dict[str, Any]) -> str:
    """A side's ref, a commit id cut to 12 digits; else its digest, cut likewise."""
    ref = side.get("ref")
    if ref is None:
        return str(side.get("digest"))[:19]
    commit, plus, rest = str(ref).partition("+")
    return commit[:12] + plus + rest if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit) else str(ref)


def render_text(diff: dict[str, Any]) -> str:
    """The diff for a terminal: the summary, then each machine that changes with its danger flags
    and changes, the shared resources, the outputs, and the machines that do not change."""
    s = diff["summary"]
    lines = [
        f"{diff['project']}/{diff['stack']}: base {_side(diff['base'])} -> head {_side(diff['head'])}"
        " (offline estimate)",
        f"+{s['create']} create · ~{s['update']} update · +-{s['replace']} replace · "
        f"-{s['delete']} delete · {s['same']} same",
    ]
    unchanged = [name for name, entry in diff["machines"].items() if entry["status"] == "unchanged"]
    for name, entry in diff["machines"].items():
        if entry["status"] != "unchanged":
            lines += ["", *_machine_lines(name, entry)]
    if diff["shared"]:
        lines += ["", "shared"]
        for change in diff["shared"]:
            lines += _change_lines(change)
    outputs = [f"{k} {', '.join(v)}" for k, v in diff["outputs"].items() if v]
    if outputs:
        lines += ["", "outputs " + "; ".join(outputs)]
    if unchanged:
        lines += ["", f"unchanged: {', '.join(unchanged)}"]
    return "\n".join(lines) + "\n"
