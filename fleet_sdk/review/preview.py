"""What a real `pulumi preview` says, laid over the offline diff (preview.md §1, §6.2 `--preview`).

Two inputs, told apart by their content: the one PreviewDigest `pulumi preview --json` prints, and the
JSON lines of `pulumi preview --event-log FILE`. Only what the review needs is kept: per URN Pulumi's
op, what forces a replace, and the changed property paths with their kind. Values never are: old and
new states may hold secrets in plaintext (pulumi/pulumi#4957), so they are read past, never stored,
and no message quotes one.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_sdk.errors import ConfigError
from fleet_sdk.review.danger import FLAGS, resource_flags
from fleet_sdk.review.diff import Change

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # Pulumi's "known after apply"
# Pulumi's step ops, in the five words of the offline diff
OPS = {
    "same": "same",
    "read": "same",
    "refresh": "same",
    "create": "create",
    "import": "create",
    "update": "update",
    "delete": "delete",
    "discard": "delete",
    "replace": "replace",
    "create-replacement": "replace",
    "delete-replaced": "replace",
    "read-replacement": "replace",
    "import-replacement": "replace",
    "discard-replaced": "replace",
    "remove-pending-replace": "replace",
}
_RANK = {"same": 0, "update": 1, "create": 2, "delete": 3, "replace": 4}
_DIGEST = ("steps", "changeSummary", "diagnostics", "duration", "maybeCorrupt")
_COLOR = re.compile(r"<\{%[^%]*%\}>|\x1b\[[0-9;]*m")
HINT = "give the output of `pulumi preview --json` or the file of `pulumi preview --event-log FILE`"


@dataclass(frozen=True)
class PreviewStep:
    """What Pulumi would do to one URN: `op` in the offline diff's words, `pulumi_ops` its own."""

    urn: str
    type: str
    op: str
    pulumi_ops: tuple[str, ...]
    replace_reasons: tuple[str, ...]
    paths: tuple[tuple[str, str], ...]  # (property path, Pulumi's kind: update, add-replace, …)
    unknown: tuple[str, ...]  # inputs known only after apply


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    urn: str | None
    message: str


@dataclass(frozen=True)
class PulumiPreview:
    source: str  # "digest" or "event-log"
    steps: Mapping[str, PreviewStep]
    summary: Mapping[str, int]  # Pulumi's own op -> count
    diagnostics: tuple[Diagnostic, ...] = ()


@dataclass
class _Collect:
    """Steps as they are read; one URN may have several (refresh then update, replacement halves)."""

    path: Path
    ops: dict[str, list[str]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, set[str]] = field(default_factory=dict)
    paths: dict[str, dict[str, str]] = field(default_factory=dict)
    unknown: dict[str, set[str]] = field(default_factory=dict)
    summary: dict[str, int] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def fail(self, where: str, what: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {what}; {HINT}")

    def text(self, where: str, value: Mapping[str, Any], key: str) -> str:
        found = value.get(key)
        if not isinstance(found, str) or not found:
            got = "nothing" if found is None else f"a {type(found).__name__}"  # never the value
            raise self.fail(f"{where}.{key}", f"expected a non-empty string, got {got}")
        return found

    def names(self, where: str, value: Mapping[str, Any], key: str) -> list[str]:
        found = value.get(key) or []
        if not isinstance(found, list) or not all(isinstance(x, str) for x in found):
            raise self.fail(f"{where}.{key}", "expected a list of property names")
        return found

    def step(self, where: str, step: Any, kind_key: str, reasons_key: str, diffs_key: str, state_key: str) -> None:
        if not isinstance(step, dict):
            raise self.fail(where, f"expected an object, got {type(step).__name__}")
        op, urn = self.text(where, step, "op"), self.text(where, step, "urn")
        self.ops.setdefault(urn, []).append(op)
        type_ = step.get("type")
        self.types.setdefault(urn, type_ if isinstance(type_, str) and type_ else _urn_type(urn))
        if OPS.get(op, "update") == "replace":
            self.reasons.setdefault(urn, set()).update(self.names(where, step, reasons_key))
        paths = self.paths.setdefault(urn, {})
        detailed = step.get("detailedDiff") or {}
        if not isinstance(detailed, dict):
            raise self.fail(f"{where}.detailedDiff", "expected an object of property paths")
        for prop, change in detailed.items():
            kind = change.get(kind_key) if isinstance(change, dict) else None
            if not isinstance(kind, str):
                raise self.fail(f"{where}.detailedDiff[{json.dumps(prop)}].{kind_key}", "expected a string")
            if kind.endswith("-replace") or prop not in paths:
                paths[prop] = kind
        if not detailed:
            for prop in self.names(where, step, diffs_key):
                paths.setdefault(prop, "update-replace" if prop in self.reasons.get(urn, ()) else "update")
        new = step.get(state_key)
        inputs = new.get("inputs") if isinstance(new, dict) else None
        if isinstance(inputs, dict):
            self.unknown.setdefault(urn, set()).update(k for k, v in inputs.items() if _holds_unknown(v))

    def counts(self, where: str, value: Any) -> None:
        if not isinstance(value, dict):
            raise self.fail(where, "expected an object of op -> count")
        self.summary.update({op: n for op, n in value.items() if isinstance(n, int) and not isinstance(n, bool)})

    def diagnostic(self, value: Any) -> None:
        if not isinstance(value, dict) or value.get("severity") not in ("error", "warning"):
            return
        message = _COLOR.sub("", str(value.get("message", ""))).strip()
        urn = value.get("urn") if isinstance(value.get("urn"), str) and value.get("urn") else None
        self.diagnostics.append(Diagnostic(str(value["severity"]), urn, message[:500]))

    def preview(self, source: str) -> PulumiPreview:
        steps = {urn: self._merged(urn, ops) for urn, ops in sorted(self.ops.items())}
        summary = self.summary
        if not summary:
            for step in steps.values():
                summary[step.op] = summary.get(step.op, 0) + 1
        return PulumiPreview(source, steps, dict(sorted(summary.items())), tuple(self.diagnostics))

    def _merged(self, urn: str, ops: list[str]) -> PreviewStep:
        mapped = {OPS.get(op, "update") for op in ops}
        op = "replace" if {"create", "delete"} <= mapped else max(mapped, key=_RANK.__getitem__)
        return PreviewStep(
            urn,
            self.types[urn],
            op,
            tuple(ops),
            tuple(sorted(self.reasons.get(urn, ()))) if op == "replace" else (),
            tuple(sorted(self.paths.get(urn, {}).items())),
            tuple(sorted(self.unknown.get(urn, ()))),
        )


def _urn_type(urn: str) -> str:
    parts = urn.split("::", 3)
    return parts[2].split("$")[-1] if len(parts) == 4 else ""


def _holds_unknown(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_unknown(v) for v in value)
    return isinstance(value, str) and value == UNKNOWN


def read_preview(path: Path) -> PulumiPreview:
    """Pulumi's preview from `path`: a PreviewDigest (`--json`) or an event log (`--event-log`),
    whichever the content is. Anything else is a ConfigError naming the file and the line or field."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the preview: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (offset {e.start}); {HINT}") from e
    if not text.strip():
        raise ConfigError(f"{path}: empty; {HINT}")
    collect = _Collect(path)
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as e:
        first = text.lstrip().split("\n", 1)[0]
        if _is_event(_loads_or_none(first)):
            return _read_events(collect, text)
        raise ConfigError(f"{path}: not JSON (line {e.lineno}, column {e.colno}: {e.msg}); {HINT}") from e
    if _is_event(whole):
        return _read_events(collect, text)
    if isinstance(whole, dict) and any(key in whole for key in _DIGEST):
        return _read_digest(collect, whole)
    what = "a JSON object" if isinstance(whole, dict) else f"JSON of type {type(whole).__name__}"
    raise ConfigError(
        f"{path}: {what} that is neither a preview digest (no `steps` or `changeSummary`) nor an engine event; {HINT}"
    )


def _loads_or_none(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _is_event(value: Any) -> bool:
    return isinstance(value, dict) and ("sequence" in value or any(k.endswith("Event") for k in value))


def _read_digest(collect: _Collect, digest: dict[str, Any]) -> PulumiPreview:
    steps = [] if digest.get("steps") is None else digest["steps"]
    if not isinstance(steps, list):
        raise collect.fail("steps", f"expected a list, got {type(steps).__name__}")
    for i, step in enumerate(steps):
        collect.step(f"steps[{i}]", step, "kind", "replaceReasons", "diffReasons", "newState")
    if "changeSummary" in digest:
        collect.counts("changeSummary", digest["changeSummary"])
    diagnostics = digest.get("diagnostics") or []
    for diagnostic in diagnostics if isinstance(diagnostics, list) else []:
        collect.diagnostic(diagnostic)
    return collect.preview("digest")


def _read_events(collect: _Collect, text: str) -> PulumiPreview:
    for n, line in enumerate(text.split("\n"), start=1):  # not splitlines: JSON strings may hold U+0085
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as e:
            raise collect.fail(f"line {n}", f"not JSON (column {e.colno}: {e.msg})") from e
        if not _is_event(event):
            raise collect.fail(f"line {n}", "not an engine event (no `sequence` and no `…Event` field)")
        if "resourcePreEvent" in event:
            pre = event["resourcePreEvent"]
            metadata = pre.get("metadata") if isinstance(pre, dict) else None
            collect.step(f"line {n}: resourcePreEvent.metadata", metadata, "diffKind", "keys", "diffs", "new")
        elif "summaryEvent" in event:
            summary = event["summaryEvent"]
            changes = summary.get("resourceChanges") if isinstance(summary, dict) else None
            collect.counts(f"line {n}: summaryEvent.resourceChanges", changes or {})
        elif "diagnosticEvent" in event:
            collect.diagnostic(event["diagnosticEvent"])
    return collect.preview("event-log")


def _all_changes(diff: dict[str, Any]) -> Iterator[tuple[str | None, dict[str, Any]]]:
    for machine, entry in sorted(diff.get("machines", {}).items()):
        for change in entry.get("changes", []):
            yield machine, change
    for change in diff.get("shared", []):
        yield None, change


def _take_step(change: dict[str, Any], step: PreviewStep) -> None:
    """Pulumi's op and replace reasons win; its paths and kinds are added beside ours, never values."""
    offline = change.get("op")
    if step.op != offline:
        change["offline_op"] = offline
    change["op"] = step.op
    change["pulumi_op"] = step.op
    if step.op != "replace":
        change["replace_reasons"] = []
    elif step.replace_reasons or offline != "replace":
        change["replace_reasons"] = list(step.replace_reasons)
    change["pulumi_paths"] = [{"path": path, "kind": kind} for path, kind in step.paths]
    if step.unknown:
        change["pulumi_unknown"] = list(step.unknown)


def _same_change(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A plan resource the diff leaves out because it is the same offline, as a change."""
    options = resource.get("options") or {}
    return {
        "urn": resource["urn"],
        "type": resource.get("type", ""),
        "name": resource.get("name", ""),
        "op": "same",
        "protect": bool(options.get("protect")),
        "paths": [],
        "replace_reasons": [],
        "unknown": [],
        "note": None,
    }


def _add_sames(out: dict[str, Any], plan: Mapping[str, Any], preview: PulumiPreview) -> None:
    """Into `out`, the plan's resources the diff leaves out (same offline) that Pulumi changes, under
    the machine they belong to or act on (`machine`, else `subject`), or shared."""
    listed = {change["urn"] for _, change in _all_changes(out)}
    for resource in plan.get("resources", []):
        step = preview.steps.get(resource.get("urn", ""))
        if step is None or step.op == "same" or step.urn in listed:
            continue
        owner = resource.get("machine") or resource.get("subject")
        entry = out.get("machines", {}).get(owner) if owner else None
        changes = entry.setdefault("changes", []) if entry is not None else out.setdefault("shared", [])
        changes.append(_same_change(resource))
        changes.sort(key=lambda c: c["urn"])


def _redanger(entry: dict[str, Any], machine: str) -> None:
    """The resource flags (wipe, blocked, reboot, network) again from the ops as they now stand, by
    review.danger's rules; a flag something else raised (a changed disk layout of an installed
    machine: wipe; a member joining: network) stays."""
    flags = resource_flags(
        [
            Change(
                urn=c["urn"],
                type=c.get("type", ""),
                name=c.get("name", ""),
                op=c["op"],
                protect=bool(c.get("protect")),
                owner=machine,
                paths=[*c.get("paths", []), *c.get("pulumi_paths", [])],
            )
            for c in entry.get("changes", [])
            if c.get("op") != "same"
        ]
    )
    danger = set(entry.get("danger", [])) - {"blocked", "reboot"}
    if not (entry.get("disk") or {}).get("changed"):
        danger.discard("wipe")
    danger |= flags
    entry["danger"] = [flag for flag in FLAGS if flag in danger] + sorted(danger - set(FLAGS))
    if entry.get("status") in ("changed", "unchanged"):
        changed = any(c.get("op") != "same" for c in entry.get("changes", []))
        entry["status"] = "changed" if changed or danger or (entry.get("disk") or {}).get("changed") else "unchanged"


def _implicit(step: PreviewStep) -> bool:
    """The stack's root and default providers, which the offline recording never holds."""
    name = step.urn.split("::", 3)[-1]
    return step.type == "pulumi:pulumi:Stack" or (
        step.type.startswith("pulumi:providers:") and name.startswith("default")
    )


def apply_preview(
    diff: Mapping[str, Any], preview: PulumiPreview, *, plan: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A new diff where Pulumi's word wins for each URN it reports, every disagreement listed under
    `preview`. The diff lists no resource that is the same offline: with `plan` (the head plan
    document, the offline URN table) those Pulumi changes join their machine as disagreements;
    without it they are `unmatched`, as are the URNs Pulumi reports that the plan lacks. Changes
    the offline diff expects that Pulumi does not report are `unreported`."""
    out: dict[str, Any] = copy.deepcopy(dict(diff))
    if plan is not None:
        _add_sames(out, plan, preview)
    summary = out.setdefault("summary", {})
    seen: set[str] = {r["urn"] for r in (plan or {}).get("resources", [])}
    disagreements: list[dict[str, Any]] = []
    unreported: list[dict[str, Any]] = []
    moved: set[str] = set()
    for machine, change in _all_changes(out):
        seen.add(change["urn"])
        step = preview.steps.get(change["urn"])
        offline = change.get("op")
        if step is None:
            if offline not in (None, "same"):
                unreported.append({"urn": change["urn"], "machine": machine, "offline": offline})
            continue
        _take_step(change, step)
        if step.op != offline:
            disagreements.append({"urn": change["urn"], "machine": machine, "offline": offline, "pulumi": step.op})
            if isinstance(summary.get(offline), int) and summary[offline] > 0:
                summary[offline] -= 1
            summary[step.op] = summary.get(step.op, 0) + 1
            if machine is not None:
                moved.add(machine)
    for machine in sorted(moved):
        _redanger(out["machines"][machine], machine)
    unmatched = [
        {"urn": urn, "type": step.type, "pulumi": step.op}
        for urn, step in sorted(preview.steps.items())
        if urn not in seen and not (step.op == "same" and (plan is None or _implicit(step)))
    ]
    out["preview"] = {
        "source": preview.source,
        "summary": dict(preview.summary),
        "disagreements": sorted(disagreements, key=lambda d: d["urn"]),
        "unmatched": unmatched,
        "unreported": sorted(unreported, key=lambda d: d["urn"]),
        "diagnostics": [{"severity": d.severity, "urn": d.urn, "message": d.message} for d in preview.diagnostics],
    }
    return out
