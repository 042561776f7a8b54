"""Pulumi property paths: `a.b`, `a[0]`, `a["key.with.dots"]`, `*` for any key or index.

Formatted and matched as the engine does (`resource.PropertyPath`): a path in `ignore_changes` or
`replace_on_changes` *contains* every path it is a prefix of, so `triggers[*]` contains `triggers[0]`
and `triggers[0].x`, but not `triggers` itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

Path = tuple[str | int, ...]

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_SEGMENT = re.compile(r'\[(\d+|\*)\]|\["((?:[^"\\]|\\.)*)"\]|\.?([^.\[\]]+)')


def format_path(path: Path) -> str:
    out: list[str] = []
    for key in path:
        if isinstance(key, int) or (key == "*" and out):
            out.append(f"[{key}]")
        elif _IDENTIFIER.match(key) or key == "*":
            out.append(f".{key}" if out else key)
        else:
            out.append('["' + key.replace("\\", "\\\\").replace('"', '\\"') + '"]')
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def parse_path(text: str) -> Path:
    """The segments of `text`; one that does not parse is a single key (it then matches only itself)."""
    segments: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if m is None or m.end() == pos:
            return (text,)
        index, quoted, bare = m.groups()
        if index is not None:
            segments.append("*" if index == "*" else int(index))
        elif quoted is not None:
            segments.append(re.sub(r"\\(.)", r"\1", quoted))
        else:
            segments.append(bare)
        pos = m.end()
    return tuple(segments)


def contains(pattern: Path, path: Path) -> bool:
    """True when `pattern` is a prefix of `path`, `*` matching any one key or index."""
    if len(path) < len(pattern):
        return False
    return all(p == "*" or p == q for p, q in zip(pattern, path, strict=False))


def any_contains(patterns: Iterable[str], path: Path) -> str | None:
    """The first of `patterns` that contains `path`, else None."""
    for text in patterns:
        if contains(parse_path(text), path):
            return text
    return None
