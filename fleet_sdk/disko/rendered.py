"""machines/<m>/disko.json as it is in the fleet repository: the file the install actually reads.

`fleet disko render --write` writes it from the stack's layout; a hand edit, a merge gone wrong or a
stale copy would partition the disk differently from what every check saw. So the file is read back
and checked: it must parse as a disko layout, pass the checks against the machine's host, and be
byte-for-byte the stack's rendering.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_sdk.errors import DiskoError
from fleet_sdk.spec.disks import BootMode, DiskLayout

if TYPE_CHECKING:
    from fleet_sdk.spec import Machine


def path_of(repo: Path, machine: str) -> Path:
    return repo / "machines" / machine / "disko.json"


def problems(
    repo: Path, machine: str, layout: DiskLayout | None, boot: BootMode | None, disk_bytes: int | None
) -> list[str]:
    """What is wrong with the machine's written disko.json (none when it is not written yet)."""
    path = path_of(repo, machine)
    rel = f"machines/{machine}/disko.json"
    fix = f"run `fleet disko render {machine} --write`"
    if not path.exists() and not path.is_symlink():
        return []
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else str(e)
        return [f"machine {machine!r}: {rel}: cannot be read as JSON ({reason}); {fix}"]
    if layout is None:
        return [f"machine {machine!r}: {rel}: the stack declares no disks for it; declare Machine.disks or remove it"]
    try:
        written = DiskLayout.from_disko(data)
    except DiskoError as e:
        return [f"machine {machine!r}: {rel}: not a disko layout: {p}; {fix}" for p in e.problems]
    found = [f"machine {machine!r}: {rel}: {p}" for p in written.check(boot=boot, disk_bytes=disk_bytes)]
    if text != layout.render():
        found.append(f"machine {machine!r}: {rel}: differs from the stack's layout, yet the install reads it; {fix}")
    return found


def machines_problems(repo: Path, machines: Iterable[Machine]) -> list[str]:
    """`problems` for each machine, against its host's boot mode and disk size."""
    found: list[str] = []
    for m in machines:
        shape = m.shape
        found += problems(repo, m.name, m.disks, shape.boot if shape else None, m.disk_bytes)
    return found
