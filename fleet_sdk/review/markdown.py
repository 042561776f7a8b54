"""`fleet plan --markdown`: a plan diff (review.diff, preview.md §6.2) as one pull-request comment.

The layout (preview.md §6.3), top to bottom:

    <!-- fleet-plan project=P stack=S -->               the marker a sticky comment is found by
    ## fleet plan: `P/S` · base `REF` → head `REF`
    > ⛔ blocked: … / > ⚠️ wipe: … (or a calm line)    then how many machines reboot, regenerate …
    |machine|cloud|disk|secrets|system|zerotier|        one row per machine that changes
    N machines unchanged: …
    `+N create · ~N update · +-N replace · -N delete · N same` (offline estimate | Pulumi preview)
    monthly cost: +€X.XX (€A → €B)                   per currency, at the catalog's list prices
    <details> per machine, shared, outputs; <details> graph

Over `budget` characters, parts go in this order (TRIMS): the list of unchanged machines (their count
stays), old → new values, the details of machines without danger, the graph, every detail, and at
last the names in the banner past the first BANNER_NAMES of a reason. The marker, heading, banner,
table and summary always stay; table rows are compact (no padding) so 1000 changed machines fit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleet_sdk.review.cost import markdown_line as cost_line
from fleet_sdk.review.markdown_details import changes_table, details, machine_details, outputs_section
from fleet_sdk.review.markdown_text import (
    ABSENT,
    SYMBOLS,
    code,
    fence,
    gone,
    names,
    plural,
    scrub,
    short_ref,
    short_type,
    text,
)

BUDGET = 60_000
GRAVEST = ("delete", "replace", "create", "update")
SUMMARY_OPS = ("create", "update", "replace", "delete")
BANNER_NAMES = 20  # machines named per banner reason once everything else is cut
CELL_ITEMS = 3  # properties or resources named in one cloud cell
DANGER_WORDS = {"reboot": "reboot", "secrets": "regenerate secrets", "network": "network", "system": "new system"}


@dataclass(frozen=True)
class Trim:
    """What this rendering leaves out (module doc)."""

    unchanged: bool = False
    values: bool = False
    calm_details: bool = False
    graph: bool = False
    details: bool = False
    banner: bool = False


TRIMS = (
    Trim(),
    Trim(unchanged=True),
    Trim(unchanged=True, values=True),
    Trim(unchanged=True, values=True, calm_details=True),
    Trim(unchanged=True, values=True, calm_details=True, graph=True),
    Trim(unchanged=True, values=True, calm_details=True, graph=True, details=True),
    Trim(unchanged=True, values=True, calm_details=True, graph=True, details=True, banner=True),
)


def render_markdown(diff: dict[str, Any], *, mermaid: str | None = None, budget: int = BUDGET) -> str:
    """The comment for `diff` (a `diff_plans` result), at most `budget` characters when cutting the
    parts in TRIMS order gets it there; `mermaid` (render_mermaid) goes in a folded graph section."""
    out = ""
    for trim in TRIMS:
        out = scrub(_render(diff, mermaid, trim, budget))
        if len(out) <= budget:
            break
    return out


def _render(diff: Mapping[str, Any], mermaid: str | None, trim: Trim, budget: int) -> str:
    machines: dict[str, Any] = diff.get("machines") or {}
    changed = {n: m for n, m in sorted(machines.items()) if m.get("status") != "unchanged"}
    unchanged = sorted(n for n, m in machines.items() if m.get("status") == "unchanged")
    shared = [c for c in diff.get("shared") or [] if c.get("op") != "same"]
    blocks = [_marker(diff) + "\n" + _heading(diff), _banner(changed, shared, trim)]
    blocks.append(_table(changed) if changed else "No machine changes.")
    if unchanged:
        listed = "" if trim.unchanged else ": " + names(unchanged)
        blocks.append(f"{len(unchanged)} {plural(len(unchanged), 'machine')} unchanged{listed}.")
    blocks.append(_summary(diff))
    blocks.append(cost_line(diff))  # monthly cost: +€X.XX (€A → €B)
    if trim != TRIMS[0]:
        blocks.append(_cut_note(trim, budget))
    if not trim.details:
        for name, m in changed.items():
            if m.get("danger") or not trim.calm_details:
                blocks.append(machine_details(name, m, not trim.values))
        if shared and (not trim.calm_details or any(c.get("protect") and gone(c) for c in shared)):
            blocks.append(
                details(
                    f"shared: {len(shared)} {plural(len(shared), 'change')}", changes_table(shared, not trim.values)
                )
            )
        if not trim.calm_details and (folded := outputs_section(diff.get("outputs") or {}, not trim.values)):
            blocks.append(folded)
    if mermaid and not trim.graph:
        blocks.append(details("graph", fence(mermaid, "mermaid")))
    return "\n\n".join(b for b in blocks if b) + "\n"


def _marker(diff: Mapping[str, Any]) -> str:
    def safe(s: object) -> str:
        return re.sub(r"[^A-Za-z0-9._/-]", "_", str(s))

    return f"<!-- fleet-plan project={safe(diff.get('project'))} stack={safe(diff.get('stack'))} -->"


def _heading(diff: Mapping[str, Any]) -> str:
    def side(key: str) -> str:
        s = diff.get(key) or {}
        return code(scrub(short_ref(s.get("ref"), s.get("digest"))))

    stack = code(f"{diff.get('project')}/{diff.get('stack')}")
    return f"## fleet plan: {stack} · base {side('base')} → head {side('head')}"


def _is_cloud(type_: str) -> bool:
    """A cloud provider's resource, not a step (command:), component (fleet:) or provider (pulumi:)."""
    return not type_.startswith(("command:", "fleet:", "pulumi:"))


def _why(change: Mapping[str, Any]) -> str:
    """What forces a replace (the paths Pulumi would name), or `deleted`."""
    if change.get("op") == "delete":
        return "deleted"
    reasons = change.get("replace_reasons") or [p["path"] for p in change.get("paths") or []]
    return ", ".join(code(str(r)) for r in reasons[:CELL_ITEMS]) or "replaced"


def _wipe_reason(m: Mapping[str, Any]) -> str:
    cloud = [c for c in m.get("changes") or [] if _is_cloud(c.get("type", "")) and gone(c)]
    parts = [f"{short_type(c['type'])} {'deleted' if c['op'] == 'delete' else 'replaced: ' + _why(c)}" for c in cloud]
    if (m.get("disk") or {}).get("changed"):
        parts.append("disk layout changed")
    return "; ".join(parts[:2]) or "wipe"


def _blocked_reason(changes: list[Mapping[str, Any]]) -> str:
    held = [c for c in changes if c.get("protect") and gone(c)]
    return "; ".join(f"protected {short_type(c['type'])}, {_why(c)}" for c in held[:2]) or "protected"


def _banner(changed: Mapping[str, Any], shared: list[Mapping[str, Any]], trim: Trim) -> str:
    blocked: dict[str, list[str]] = {}
    wipe: dict[str, list[str]] = {}
    for name, m in changed.items():
        danger = m.get("danger") or []
        if "blocked" in danger:
            blocked.setdefault(_blocked_reason(m.get("changes") or []), []).append(name)
        if "wipe" in danger:
            wipe.setdefault(_wipe_reason(m), []).append(name)
    for c in shared:
        if c.get("protect") and gone(c):
            blocked.setdefault(_blocked_reason([c]), []).append(f"shared {c.get('name')}")
    limit = BANNER_NAMES if trim.banner else None

    def line(mark: str, groups: dict[str, list[str]]) -> str:
        return f"> {mark}: " + " · ".join(f"{names(ms, limit)} ({reason})" for reason, ms in groups.items())

    lines = [line("⛔ blocked", blocked)] if blocked else []
    lines += [line("⚠️ wipe", wipe)] if wipe else []
    if not lines:
        lines = ["> ✅ no machine is wiped, nothing protected is blocked"]
    counts = {
        word: n
        for key, word in DANGER_WORDS.items()
        if (n := sum(key in (m.get("danger") or []) for m in changed.values()))
    }
    if counts:
        lines.append("> " + " · ".join(f"{word}: {n} {plural(n, 'machine')}" for word, n in counts.items()))
    receiving = [name for name, m in changed.items() if (m.get("secrets") or {}).get("delivered")]
    if receiving:
        lines.append(f"> 🔑 new secrets delivered to: {names(receiving, limit)}")
    return "\n>\n".join(lines)


def _table(changed: Mapping[str, Any]) -> str:
    rows = ["|machine|cloud|disk|secrets|system|zerotier|", "|---|---|---|---|---|---|"]
    rows += ["|" + "|".join(_row(name, m)) + "|" for name, m in changed.items()]
    return "\n".join(rows)


def _row(name: str, m: Mapping[str, Any]) -> list[str]:
    danger = m.get("danger") or []
    marks = ("⛔" if "blocked" in danger else "") + ("⚠️" if "wipe" in danger else "")
    status = m.get("status")
    machine = (marks + " " if marks else "") + text(name) + (f" ({status})" if status in ("added", "removed") else "")
    disk = (m.get("disk") or {}).get("changed")
    regenerate = (m.get("secrets") or {}).get("regenerate") or []
    delivered = (m.get("secrets") or {}).get("delivered")
    secrets = (
        f"{len(regenerate)} regenerated"
        if regenerate
        else "new values delivered"
        if delivered
        else ("changed" if "secrets" in danger else ABSENT)
    )
    known = (m.get("system") or {}).get("changed")
    system = "unknown" if known is None else "changed" if known else "unchanged"
    zerotier = m.get("zerotier") or {}
    zt = ", ".join(f"{key} {names(zerotier[key])}" for key in ("joins", "leaves") if zerotier.get(key))
    return [
        machine,
        _cloud_cell(m),
        ("wipe" if "wipe" in danger else "changed") if disk else ABSENT,
        secrets,
        system,
        zt or ("changed" if "network" in danger else ABSENT),
    ]


def _cloud_cell(m: Mapping[str, Any]) -> str:
    """The machine's cloud changes by op, gravest first: `+-` location, `~` serverType (reboot)."""
    by_op: dict[str, list[Mapping[str, Any]]] = {}
    for c in m.get("changes") or []:
        if _is_cloud(c.get("type", "")) and c.get("op") != "same":
            by_op.setdefault(c["op"], []).append(c)
    parts = []
    for op in sorted(by_op, key=lambda o: GRAVEST.index(o) if o in GRAVEST else len(GRAVEST)):
        if op in ("update", "replace"):
            items = _unique(
                p for c in by_op[op] for p in [*(c.get("replace_reasons") or []), *_paths(c), *(c.get("unknown") or [])]
            )
        else:
            kinds = _unique(short_type(c["type"]) for c in by_op[op])
            counts = {k: sum(short_type(c["type"]) == k for c in by_op[op]) for k in kinds}
            items = [k + (f"\N{MULTIPLICATION SIGN}{n}" if n > 1 else "") for k, n in counts.items()]
        more = f" +{len(items) - CELL_ITEMS}" if len(items) > CELL_ITEMS else ""
        parts.append(f"{code(SYMBOLS.get(op, op))} {', '.join(text(i) for i in items[:CELL_ITEMS])}{more}".rstrip())
    reboot = " (reboot)" if "reboot" in (m.get("danger") or []) else ""
    return " · ".join(parts) + reboot if parts else ABSENT + reboot


def _paths(change: Mapping[str, Any]) -> list[str]:
    return [str(p["path"]) for p in change.get("paths") or []]


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(str(i) for i in items))


def _summary(diff: Mapping[str, Any]) -> str:
    """The op counts in Pulumi's symbols and where they come from; with Pulumi's preview applied
    (review.preview.apply_preview), how far the offline plan and Pulumi disagree."""
    counts = diff.get("summary") or {}
    others = sorted(op for op, n in counts.items() if op not in (*SUMMARY_OPS, "same") and n)
    ops = [f"{SYMBOLS.get(op, '')}{counts.get(op, 0)} {op}" for op in (*SUMMARY_OPS, *others)]
    line = code(" · ".join([*ops, f"{counts.get('same', 0)} same"]))
    preview = diff.get("preview")
    if not preview:
        return f"{line} (offline estimate; no Pulumi preview)"
    found = preview if isinstance(preview, dict) else {}
    errors = [d for d in found.get("diagnostics") or [] if d.get("severity") == "error"]
    notes = [
        (len(found.get("disagreements") or []), "op", "Pulumi and the offline plan disagree on"),
        (len(found.get("unmatched") or []), "resource", "only Pulumi reports"),
        (len(found.get("unreported") or []), "change", "Pulumi does not report"),
        (len(errors), "error", "Pulumi reports"),
    ]
    said = "".join(f"; {what} {n} {plural(n, noun)}" for n, noun, what in notes if n)
    return f"{line} (Pulumi preview{said})"


def _cut_note(trim: Trim, budget: int) -> str:
    cut = [
        ("the list of unchanged machines", trim.unchanged),
        ("old → new values", trim.values),
        ("details of machines without danger", trim.calm_details),
        ("the graph", trim.graph),
        ("every detail", trim.details),
        (f"banner names past the first {BANNER_NAMES} per reason", trim.banner),
    ]
    dropped = ", ".join(what for what, done in cut if done)
    return f"_Cut to fit {budget:,} characters: {dropped}. `fleet plan --json` has everything._"
