"""`fleet plan --against`: what applying the head plan would do to a stack at the base plan, offline.

`diff_plans(old, new)` is pure and mimics Pulumi's engine on two plan documents (DESIGN §5):
- resources match by URN; one deleted and one created with the same type and name is noted as
  moved (an alias keeps it);
- the new resource's `ignore_changes` paths are dropped first;
- each changed input path gets Pulumi's kind: `add`, `delete`, `update`, or `…-replace` when
  `replace_on_changes` or the cloud's table of replacing properties (REPLACING) contains it;
- a resource's op is `create`, `update`, `replace`, `delete` or `same` (options are not compared,
  so a `protect`-only change is `same`);
- `"<computed>"` on both sides is the same value unless a resource feeding that input (the plan's
  `property_dependencies`) gets new outputs: it is created or replaced (a new id), or it is a
  command that runs again; a cloud resource updated in place keeps its id and addresses (so a
  renamed or resized server's install step, whose trigger is its id, does not run again), except
  that a GCP instance stopped for an update loses its ephemeral address. Such a path is listed
  under `unknown` (known after apply) and counts as an update, or a replace where
  `replace_on_changes` contains it. (A plan without `property_dependencies`: any dependency created
  or replaced.) A changed literal part of a partly computed value cannot be seen;
- an update its cloud makes with the machine off (REBOOTING: serverType, machineType) gets a note
  saying so, and the machine the `reboot` flag;
- values that are `"[secret]"` or look like one stay `"[secret]"`.

Per machine, fleet_sdk.review.danger adds the status and danger flags. The result is the `--json`
document: `{"schema": "fleet-plan-diff/1", "project", "stack", "base", "head", "summary",
"machines", "shared", "outputs", "cost"}`; review.cost adds the monthly cost change, in total and
per machine (`cost`: {"old", "new", "delta"}, amounts per currency, or null).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleet_sdk.catalog import gcp, hetzner
from fleet_sdk.review import cost, danger, feeds
from fleet_sdk.review.paths import Path, any_contains, contains, format_path, parse_path

SCHEMA = "fleet-plan-diff/1"
COMPUTED = "<computed>"
SECRET = "[secret]"  # noqa: S105 (a placeholder, not a secret)
OPS = ("create", "update", "replace", "delete", "same")
COMMAND = "command:local:Command"

# per resource type, the properties whose change replaces it (the providers' ForceNew)
REPLACING: dict[str, tuple[str, ...]] = {
    **hetzner.REPLACING,
    **gcp.REPLACING,
    COMMAND: ("triggers",),  # pulumi-command: a changed trigger re-creates the command
    "cloudflare:index/dnsRecord:DnsRecord": ("zoneId",),
}
REPLACING_BLOCKS: dict[str, tuple[str, ...]] = {**gcp.REPLACING_BLOCKS}

_SECRET_TEXT = ("PRIVATE KEY-----", "AGE-SECRET-KEY-", SECRET)
_SECRET_NAME = re.compile(r"(?i)(secret|password|passphrase|passwd|token|private_?key|credential|api_?key)")
_PULUMI_SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105 (Pulumi's marker of a secret value)


@dataclass
class Change:
    """One resource's change; `owner` is the machine it belongs to or acts on (None: shared)."""

    urn: str
    type: str
    name: str
    op: str
    protect: bool
    owner: str | None
    paths: list[dict[str, Any]] = field(default_factory=list)
    replace_reasons: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def blocked(self) -> bool:
        """The engine refuses to replace or delete a protected resource."""
        return self.protect and self.op in ("replace", "delete")

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "op": self.op,
            "protect": self.protect,
            "paths": self.paths,
            "replace_reasons": self.replace_reasons,
            "unknown": self.unknown,
            "note": self.note,
        }


def value_changes(old: Any, new: Any, path: Path = ()) -> list[tuple[Path, str, Any, Any]]:
    """(path, kind, old, new) of every leaf where `old` and `new` differ: a key or element only on one
    side is `add`/`delete` as a whole, anything else that differs is `update`."""
    out: list[tuple[Path, str, Any, Any]] = []
    _walk(old, new, path, out)
    return out


def _walk(old: Any, new: Any, path: Path, out: list[tuple[Path, str, Any, Any]]) -> None:
    if old == new and type(old) is type(new):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            if key not in new:
                out.append(((*path, key), "delete", old[key], None))
            elif key not in old:
                out.append(((*path, key), "add", None, new[key]))
            else:
                _walk(old[key], new[key], (*path, key), out)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            if i >= len(new):
                out.append(((*path, i), "delete", old[i], None))
            elif i >= len(old):
                out.append(((*path, i), "add", None, new[i]))
            else:
                _walk(old[i], new[i], (*path, i), out)
    else:
        out.append((path, "update", old, new))


def computed_paths(old: Any, new: Any, path: Path = ()) -> list[Path]:
    """The paths where both sides are `"<computed>"`."""
    if old == COMPUTED and new == COMPUTED:
        return [path]
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k in sorted(old.keys() & new.keys()) for p in computed_paths(old[k], new[k], (*path, k))]
    if isinstance(old, list) and isinstance(new, list):
        return [p for i, (a, b) in enumerate(zip(old, new, strict=False)) for p in computed_paths(a, b, (*path, i))]
    return []


def looks_secret(path: Path, value: Any) -> bool:
    """A value to show as "[secret]": a secret placeholder or Pulumi secret anywhere in it, key
    material, or a property named like a credential."""
    if any(isinstance(k, str) and _SECRET_NAME.search(k) for k in path) and value not in (None, COMPUTED):
        return True
    if isinstance(value, str):
        return any(marker in value for marker in _SECRET_TEXT)
    if isinstance(value, dict):
        return _PULUMI_SECRET_SIG in value or any(looks_secret((*path, k), v) for k, v in value.items())
    if isinstance(value, list):
        return any(looks_secret((*path, i), v) for i, v in enumerate(value))
    return False


def _replaces(rtype: str, options: dict[str, Any], path: Path, kind: str) -> bool:
    if any_contains(options.get("replace_on_changes") or (), path) or any_contains(REPLACING.get(rtype, ()), path):
        return True
    blocks = REPLACING_BLOCKS.get(rtype, ())
    return kind in ("add", "delete") and any(
        len(parse_path(b)) == len(path) and contains(parse_path(b), path) for b in blocks
    )


def _owner(resource: dict[str, Any]) -> str | None:
    owner = resource.get("machine") or resource.get("subject")
    return str(owner) if owner else None


def _compare(old: dict[str, Any], new: dict[str, Any], fed_unknown: Callable[[Path], bool]) -> Change:
    """The change of a resource present in both plans; `fed_unknown(path)`: the value at a path
    that is computed in both plans is not known before the apply (what feeds it changes)."""
    options = new.get("options") or {}
    ignored = options.get("ignore_changes") or ()
    found = [c for c in value_changes(old.get("inputs"), new.get("inputs")) if not any_contains(ignored, c[0])]
    unknown = [
        p
        for p in computed_paths(old.get("inputs"), new.get("inputs"))
        if not any_contains(ignored, p) and fed_unknown(p)
    ]
    rtype = new["type"]
    paths, reasons = [], set()
    for path, kind, before, after in found:
        text = format_path(path)
        if _replaces(rtype, options, path, kind):
            kind += "-replace"
            reasons.add(text)
        secret = looks_secret(path, before) or looks_secret(path, after)
        paths.append(
            {"path": text, "kind": kind, "old": SECRET if secret else before, "new": SECRET if secret else after}
        )
    # which input an unknown comes from is not recorded: it replaces only where replace_on_changes
    # names it (the steps' triggers, which carry the ids of what they wait for)
    reasons |= {format_path(p) for p in unknown if any_contains(options.get("replace_on_changes") or (), p)}
    op = "replace" if reasons else "update" if paths or unknown else "same"
    return Change(
        new["urn"],
        rtype,
        new["name"],
        op,
        _protect(new),
        _owner(new),
        paths,
        sorted(reasons),
        [format_path(p) for p in unknown],
    )


def resource_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every resource's change, by URN. The new plan's resources go in dependency order, so each
    knows whether one of its dependencies is created or replaced (its `unknown`)."""
    before = {r["urn"]: r for r in old.get("resources") or ()}
    after = {r["urn"]: r for r in new.get("resources") or ()}
    changes: dict[str, Change] = {}
    was = _aliased(before, after)
    children: dict[str, list[str]] = {}
    for urn, r in after.items():
        children.setdefault(r.get("parent") or "", []).append(urn)
    for urn in dependency_order(after):
        r = after[urn]
        if urn not in before and urn not in was:
            changes[urn] = Change(urn, r["type"], r["name"], "create", _protect(r), _owner(r))
            continue
        old_r = before[was.get(urn, urn)]
        changes[urn] = _compare(old_r, r, functools.partial(feeds.fed_unknown, r, changes=changes, children=children))
        notes = [f"renamed from {was[urn]} (an alias keeps it)"] if urn in was else []
        notes += [feeds.REBOOT_NOTES[r["type"]]] if feeds.reboots(changes[urn]) else []
        changes[urn].note = "; ".join(notes) or None
    for urn, r in before.items():
        if urn not in after and urn not in was.values():
            changes[urn] = Change(urn, r["type"], r["name"], "delete", _protect(r), _owner(r))
    _note_moves(changes)
    return [changes[urn] for urn in sorted(changes)]


def _aliased(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, str]:
    """new URN -> the old URN its aliases match (its own, or derived from its parents' as Pulumi's
    engine derives them: the parent's old name in place of its new one at the start of the child's)."""
    memo: dict[str, list[str]] = {}

    def aliases(urn: str) -> list[str]:
        if urn not in memo:
            memo[urn] = []  # a cycle of parents cannot be, but must not loop
            r = after.get(urn) or {}
            parent = r.get("parent") or ""
            found = [_spec_urn(a, r, parent) for a in (r.get("options") or {}).get("aliases") or ()]
            for old_parent in aliases(parent) if parent in after else ():
                pname, name = _urn_name(parent), r["name"]
                renamed = _urn_name(old_parent) + name[len(pname) :] if name.startswith(pname) else name
                found.append(_make_urn(urn, renamed, r["type"], old_parent))
            memo[urn] = [u for u in found if u]
        return memo[urn]

    matched: dict[str, str] = {}
    for urn in after:
        if urn not in before:
            old = next((u for u in aliases(urn) if u in before and u not in after), None)
            if old is not None and old not in matched.values():
                matched[urn] = old
    return matched


def _urn_name(urn: str) -> str:
    return urn.rpartition("::")[2]


def _make_urn(like: str, name: str, rtype: str, parent: str, stack: str = "", project: str = "") -> str:
    """The URN of `name` of type `rtype` under `parent` ("": none), in the stack and project of
    `like` unless given."""
    head, old_project = like.split("::")[:2]
    prefix = f"urn:pulumi:{stack or head.rpartition(':')[2]}::{project or old_project}"
    chain = parent.split("::")[2] + "$" if parent else ""
    return f"{prefix}::{chain}{rtype}::{name}"


def _spec_urn(alias: dict[str, Any], r: dict[str, Any], parent: str) -> str:
    """The old URN an alias names: as recorded (`urn`), or from its spec over the resource's own."""
    if "urn" in alias:
        return str(alias["urn"])
    spec = alias.get("spec") or {}
    parent = "" if spec.get("noParent") else spec.get("parentUrn") or parent
    name, rtype = spec.get("name") or r["name"], spec.get("type") or r["type"]
    return _make_urn(r["urn"], name, rtype, parent, spec.get("stack", ""), spec.get("project", ""))


def dependency_order(resources: dict[str, dict[str, Any]]) -> list[str]:
    """The URNs of `resources`, each after the dependencies it has among them (depth first, without
    recursion: a long chain of deploy waves must not hit Python's recursion limit)."""
    order: list[str] = []
    seen: set[str] = set()
    for root in resources:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(resources[root].get("dependencies") or ()))]
        while stack:
            urn, pending = stack[-1]
            for dep in pending:
                if dep in resources and dep not in seen:
                    seen.add(dep)
                    stack.append((dep, iter(resources[dep].get("dependencies") or ())))
                    break
            else:
                stack.pop()
                order.append(urn)
    return order


def _protect(resource: dict[str, Any]) -> bool:
    return bool((resource.get("options") or {}).get("protect"))


def _note_moves(changes: dict[str, Change]) -> None:
    """A resource deleted under one parent and created with the same type and name under another is
    most likely moved: Pulumi replaces it unless the new one has an alias to the old URN."""
    created = {(c.type, c.name): c for c in changes.values() if c.op == "create"}
    for c in changes.values():
        if c.op == "delete" and (twin := created.get((c.type, c.name))):
            hint = "add an alias (ResourceOptions(aliases=[…])) to keep it instead of replacing it"
            c.note = f"moved? now {twin.urn}: {hint}"
            twin.note = f"moved? was {c.urn}: {hint}"


def digest(document: dict[str, Any]) -> str:
    """sha256 of a plan document's canonical JSON."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def output_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[str]]:
    """The stack outputs' paths added, removed and changed."""
    found: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
    bucket = {"add": "added", "delete": "removed", "update": "changed"}
    for path, kind, _, _ in value_changes(old.get("outputs") or {}, new.get("outputs") or {}):
        found[bucket[kind]].append(format_path(path))
    return found


def diff_plans(
    old: dict[str, Any], new: dict[str, Any], *, base: dict[str, Any] | None = None, head: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What applying `new` does to a stack at `old` (both plan documents). `base`/`head`: their
    {"ref", "digest"} as the caller names them (default: no ref, the documents' digests)."""
    changes = resource_changes(old, new)
    machines = (old.get("machines") or {}).keys() | (new.get("machines") or {}).keys()
    for c in changes:
        if c.owner not in machines:
            c.owner = None  # a machine neither plan declares: shown with the shared resources
    summary = dict.fromkeys(OPS, 0)
    for c in changes:
        summary[c.op] += 1
    entries = danger.machine_entries(old, new, changes)
    cost.annotate(entries, old, new)  # each machine's monthly cost change
    return {
        "schema": SCHEMA,
        "project": new.get("project", old.get("project")),
        "stack": new.get("stack", old.get("stack")),
        "base": {"ref": None, "digest": digest(old)} | (base or {}),
        "head": {"ref": None, "digest": digest(new)} | (head or {}),
        "summary": summary,
        "machines": entries,
        "shared": [c.to_json() for c in changes if c.owner is None and c.op != "same"],
        "outputs": output_changes(old, new),
        "cost": cost.cost_delta(old, new),
    }
