"""Text pieces of the plan comment (review.markdown): secrets hidden, hashes cut, Markdown escaped.

Every value a diff carries passes `value()` before it reaches the comment: a secret-shaped string is
replaced (never printed, preview.md §3: pulumi/pulumi#4957), hashes are cut to 12 characters, then
the text is escaped for a table cell. `scrub()` runs once more over the finished comment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from fleet_sdk.stack.settings import SECRET_PLACEHOLDER

SECRET = SECRET_PLACEHOLDER
# Pulumi's marker of a secret value in state and previews: {SIG: SECRET_SIG, "ciphertext"|"value": …}
PULUMI_SECRET_SIG = ("4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270")
# age identities, PEM private keys (to their end, or to the end of a cut value), sops values
_SECRET_SHAPES = re.compile(
    r"AGE-SECRET-KEY-[0-9A-Z]*"
    r"|-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\Z)"
    r"|ENC\[[^\]]*(?:\]|\Z)",
    re.DOTALL | re.IGNORECASE,
)
HASH_LENGTH = 12
# a store path's hash (nix base32, 32 characters), and hex digests (md5 and longer: sha1, sha256, git)
_STORE_HASH = re.compile(r"(/nix/store/)([0-9a-df-np-sv-z]{32})(?=[-/]|\b)")
_HEX_HASH = re.compile(r"(?<![0-9A-Za-z])([0-9a-f]{32,}|[0-9A-F]{32,})(?![0-9A-Za-z])")
MAX_VALUE = 60
# Pulumi's op symbols (its display); an op without one is written out
SYMBOLS = {
    "create": "+",
    "update": "~",
    "replace": "+-",
    "delete": "-",
    "create-replacement": "++",
    "delete-replaced": "--",
    "read": ">",
    "read-replacement": ">>",
    "import": "=",
    "import-replacement": "=>",
    "discard": "<",
    "discard-replaced": "<<",
}
ABSENT = "\N{EN DASH}"
# characters with a meaning in Markdown (or HTML) outside code spans
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~#])")


def scrub(text: str) -> str:
    """`text` with every secret-shaped part replaced by [secret]."""
    return _SECRET_SHAPES.sub(SECRET, text)


def hide_secrets(data: Any) -> Any:
    """`data` (JSON) with Pulumi secrets and secret-shaped strings replaced by [secret]."""
    if isinstance(data, dict):
        if data.get(PULUMI_SECRET_SIG[0]) == PULUMI_SECRET_SIG[1]:
            return SECRET
        return {k: hide_secrets(v) for k, v in data.items()}
    if isinstance(data, list):
        return [hide_secrets(v) for v in data]
    if isinstance(data, str):
        return scrub(data)
    return data


def shorten(text: str) -> str:
    """Store-path hashes and hex digests cut to 12 characters, marked with `…`."""
    text = _STORE_HASH.sub(lambda m: m.group(1) + m.group(2)[:HASH_LENGTH] + "…", text)
    return _HEX_HASH.sub(lambda m: m.group(1)[:HASH_LENGTH] + "…", text)


def short_ref(ref: str | None, digest: str | None) -> str:
    """A side of the diff as the heading names it: its ref (a commit cut to 12), else its digest."""
    text = ref or digest or ABSENT
    text = re.sub(r"(?<![0-9A-Za-z])([0-9a-f]{13,})(?![0-9A-Za-z])", lambda m: m.group(1)[:HASH_LENGTH], text)
    return text if len(text) <= 40 else text[:39] + "…"


def text(raw: str) -> str:
    """Plain cell or line text: Markdown's characters escaped, one line."""
    return _MARKDOWN.sub(r"\\\1", raw.replace("\r", "").replace("\n", " "))


def code(raw: str) -> str:
    """`raw` as a code span that survives a table cell: a fence longer than any backtick run inside,
    `|` escaped (GFM splits cells before it reads code spans)."""
    raw = raw.replace("\r", "").replace("\n", "\\n").replace("|", "\\|")
    runs = [len(r) for r in re.findall(r"`+", raw)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if runs else ""  # a span's one leading and trailing space are not shown
    return f"{fence}{pad}{raw}{pad}{fence}"


def value(data: Any, limit: int = MAX_VALUE) -> str:
    """A value of the diff for a cell: secrets hidden, hashes cut, at most `limit` characters."""
    if data is None:
        return ABSENT
    data = hide_secrets(data)
    raw = data if isinstance(data, str) else json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    raw = shorten(raw)
    if len(raw) > limit:
        raw = raw[: limit - 1] + "…"
    return code(raw)


def names(items: list[str], limit: int | None = None) -> str:
    """`a`, `b`, `c` (and N more)."""
    shown = items if limit is None else items[:limit]
    out = ", ".join(code(shorten(scrub(i))) for i in shown)
    return out + (f" and {len(items) - len(shown)} more" if len(shown) < len(items) else "")


def fence(body: str, language: str) -> str:
    """A fenced code block whose fence no backtick run in `body` closes."""
    runs = [len(r) for r in re.findall(r"`{3,}", body)]
    mark = "`" * max(3, max(runs, default=0) + 1)
    return f"{mark}{language}\n{body.rstrip()}\n{mark}"


def plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def short_type(type_: str) -> str:
    """Server of hcloud:index/server:Server, `gcp provider` of pulumi:providers:gcp."""
    if type_.startswith("pulumi:providers:"):
        return type_.rsplit(":", 1)[-1] + " provider"
    return type_.rsplit(":", 1)[-1]


def gone(change: Mapping[str, Any]) -> bool:
    """A change that replaces or deletes its resource."""
    return change.get("op") in ("replace", "delete")
