"""Where an install stands, kept on this machine between runs: the phases done on which server,
so a run that died (a lost connection, a killed process) resumes at the phase it was in instead of
starting over (disko twice would wipe what the first run copied). One small JSON file per machine
in $XDG_STATE_HOME/fleet/install/, written atomically after each phase, removed once installed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from fleet_sdk.fs.atomic import write_atomic


def state_home() -> Path:
    given = os.environ.get("XDG_STATE_HOME", "")
    return Path(given) if given.startswith("/") else Path.home() / ".local" / "state"


def state_file(kind: str, repo: Path, machine: str) -> Path:
    """$XDG_STATE_HOME/fleet/<kind>/<repository digest>-<machine>.json: one machine's record of a
    run that may resume, per fleet repository on this machine."""
    fleet = hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:12]
    return state_home() / "fleet" / kind / f"{fleet}-{machine}.json"


@dataclass
class Checkpoint:
    """The phases done for `machine` on `target` with the disk layout `layout` (its digest)."""

    path: Path
    machine: str
    target: str
    layout: str | None
    done: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, repo: Path, machine: str, target: str, layout: str | None) -> Checkpoint:
        """The saved phases when they were done for this very install (machine, server, layout);
        none otherwise (a checkpoint of another server or layout never skips a phase)."""
        path = state_file("install", repo, machine)
        fresh = cls(path, machine, target, layout)
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            return fresh
        same = isinstance(saved, dict) and [saved.get(k) for k in ("machine", "target", "layout")] == [
            machine,
            target,
            layout,
        ]
        done = saved.get("done") if same else None
        if isinstance(done, list) and all(isinstance(p, str) for p in done):
            fresh.done = list(done)
        return fresh

    def mark(self, phase: str) -> None:
        if phase not in self.done:
            self.done.append(phase)
        doc = {"machine": self.machine, "target": self.target, "layout": self.layout, "done": self.done}
        write_atomic(self.path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600, dir_mode=0o700)

    def clear(self) -> None:
        self.done = []
        self.path.unlink(missing_ok=True)
