"""The folded parts of the plan comment (review.markdown): per machine its resource changes (op,
resource, property, old → new), regenerated secrets, system store paths with the `nix-diff` command for
its two derivations, and disk digests; the shared resources' changes; the stack outputs.

`values=False` leaves every old → new value out (the comment's second trim).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from fleet_sdk.review.markdown_text import (
    ABSENT,
    SYMBOLS,
    code,
    fence,
    gone,
    names,
    plural,
    scrub,
    short_type,
    shorten,
    text,
    value,
)

MAX_ROWS = 40  # change rows in one <details>
_DRV = re.compile(r"/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+\.drv")


def details(summary: str, body: str) -> str:
    """A folded section: `summary` (plain text, HTML-escaped) over a Markdown `body`."""
    return f"<details><summary>{html.escape(summary)}</summary>\n\n{body}\n\n</details>"


def machine_details(name: str, m: Mapping[str, Any], values: bool) -> str:
    """A machine's folded section: its changes, the generators to run, its system, disk, ZeroTier."""
    changes = [c for c in m.get("changes") or [] if c.get("op") != "same"]
    danger = m.get("danger") or []
    summary = f"{name}: {len(changes)} {plural(len(changes), 'change')}" + (f" · {', '.join(danger)}" if danger else "")
    parts = [changes_table(changes, values)] if changes else []
    if regenerate := (m.get("secrets") or {}).get("regenerate"):
        parts.append("secrets regenerated: " + names(regenerate))
    parts += _system(m.get("system") or {}, values)
    disk = m.get("disk") or {}
    if disk.get("changed"):
        digest = disk.get("digest") or {}
        both = f": {value(digest.get('old'))} → {value(digest.get('new'))}" if values else ""
        parts.append("disk layout changed" + both)
    zerotier = m.get("zerotier") or {}
    for key in ("joins", "leaves"):
        if zerotier.get(key):
            parts.append(f"zerotier: {key} {names(zerotier[key])}")
    return details(summary, "\n\n".join(parts) or "no resource changes")


def _system(system: Mapping[str, Any], values: bool) -> list[str]:
    """The system's store paths (hashes cut) and the nix-diff command for its two derivations."""
    if not system.get("changed"):
        return []
    out, drv = system.get("outPath") or {}, system.get("drvPath") or {}
    if not values:
        return ["system changed"]
    parts = [f"system: {value(out.get('old'), 120)} → {value(out.get('new'), 120)}"]
    old, new = drv.get("old"), drv.get("new")
    if isinstance(old, str) and isinstance(new, str) and _DRV.fullmatch(old) and _DRV.fullmatch(new) and old != new:
        parts.append(f"derivations: {value(old, 120)} → {value(new, 120)}")
        parts.append(fence(f"nix-diff {old} {new}", "sh"))
    elif old == new and old:
        parts.append("same derivation (rebuild, same output)")
    return parts


def changes_table(changes: list[Mapping[str, Any]], values: bool) -> str:
    """op | resource | property | old → new, one row per changed path (MAX_ROWS at most), then the
    notes (a resource that looks moved)."""
    head = "|op|resource|property|" + ("old → new|" if values else "")
    rows = [head, "|---" * (4 if values else 3) + "|"]
    notes = []
    for c in changes:
        rows += _change_rows(c, values)
        if c.get("note"):
            notes.append(f"- {code(str(c.get('name')))}: {text(scrub(str(c['note'])))}")
    if len(rows) > MAX_ROWS + 2:
        rows = [*rows[: MAX_ROWS + 2], f"\n{len(rows) - MAX_ROWS - 2} more rows: `fleet plan --json` lists them"]
    return "\n".join(rows) + ("\n\n" + "\n".join(notes) if notes else "")


def _change_rows(c: Mapping[str, Any], values: bool) -> list[str]:
    """A change's rows: its paths with values, what forces a replace, what is known after apply, and
    the paths only Pulumi's preview reports (never with values)."""
    op = str(c.get("op"))
    resource = f"{text(short_type(c.get('type', '')))} {code(str(c.get('name')))}"
    if c.get("protect") and gone(c):
        resource += " (protected)"
    if c.get("offline_op"):
        resource += f" (Pulumi: {text(op)}, offline: {text(str(c['offline_op']))})"
    reasons = [str(r) for r in c.get("replace_reasons") or []]
    entries: list[tuple[str, str]] = []  # (path, old → new)
    for p in c.get("paths") or []:
        entries.append((str(p["path"]), f"{value(p.get('old'))} → {value(p.get('new'))}"))
    entries += [(str(u), "known after apply") for u in c.get("unknown") or []]
    entries += [(str(p["path"]), "(Pulumi: " + text(str(p.get("kind"))) + ")") for p in c.get("pulumi_paths") or []]
    listed = {e[0] for e in entries}
    entries += [(r, ABSENT) for r in reasons if r not in listed]
    rows = []
    for path, change in list(dict.fromkeys(entries)) or [(ABSENT, ABSENT)]:
        prop = text(path) if path != ABSENT else path
        cells = [code(SYMBOLS.get(op) or op), resource, prop + (" (forces replace)" if path in reasons else "")]
        rows.append("|" + "|".join([*cells, change] if values else cells) + "|")
    return rows


def outputs_section(outputs: Mapping[str, Any], values: bool) -> str:
    """Stack outputs added, removed and changed; values only while values are shown."""
    lines = []
    for key in ("added", "removed", "changed"):
        entries = outputs.get(key) or []
        if not entries:
            continue
        if isinstance(entries, dict) and values:
            shown = ", ".join(f"{code(shorten(str(k)))} {_output_value(v)}" for k, v in sorted(entries.items()))
        else:
            shown = names(sorted(str(k) for k in entries))
        lines.append(f"- {key}: {shown}")
    if not lines:
        return ""
    return details(
        "outputs: " + ", ".join(f"{len(outputs.get(k) or [])} {k}" for k in ("added", "removed", "changed")),
        "\n".join(lines),
    )


def _output_value(v: Any) -> str:
    if isinstance(v, dict) and set(v) == {"old", "new"}:
        return f"{value(v['old'])} → {value(v['new'])}"
    return value(v)
