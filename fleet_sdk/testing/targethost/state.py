"""Reading a target's state from this machine: where its paths are, its current, booted and
profile systems, the profile's generations, the calls its programs recorded, and its processes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from fleet_sdk.testing.targethost.access import TargetAccess
from fleet_sdk.testing.targethost.namespace import namespace_pids
from fleet_sdk.testing.targethost.records import CALLS_LOG


class Generation(NamedTuple):
    number: int
    path: str  # the store path system-<number>-link points at


class TargetState(TargetAccess):
    """FakeTarget's readers of its state (the base of FakeTarget)."""

    users: tuple[str, ...]

    def path(self, target_path: str) -> Path:
        """Where `target_path` of the target is on this machine. /run is reachable only while the
        target runs (through /proc); paths the target shares with this machine (/usr, most of /etc)
        are refused, so a test cannot change the machine by mistake. Symlinks inside the target
        point at target paths: resolve them with `readlink`."""
        p = PurePosixPath(target_path)
        if not p.is_absolute():
            raise ValueError(f"{target_path!r} is not absolute")
        mounts = {
            "/nix": self.root / "nix",
            "/var": self.root / "var",
            "/tmp": self.root / "tmp",  # noqa: S108 - the target's /tmp, a folder of its own
            "/root": self.root / "root",
            "/etc/ssh": self.root / "etc-ssh",
            "/etc/os-release": self.root / "os-release",
            "/usr/local/bin": self.root / "shims",
        }
        if self.users:
            mounts["/home"] = self.root / "home"
        for mount, here in mounts.items():
            if p == PurePosixPath(mount) or p.is_relative_to(mount):
                return here / p.relative_to(mount)
        if p.is_relative_to("/run"):
            boot = self._check_running()
            return Path(f"/proc/{boot.init_pid}/root") / p.relative_to("/")
        raise ValueError(f"{target_path} is this machine's own, not the target's")

    def readlink(self, target_path: str) -> str | None:
        """`readlink -f target_path` inside the target; None when it does not exist."""
        done = self.run(["readlink", "-e", target_path], check=False)
        return done.stdout.strip() or None

    def current_system(self) -> str | None:
        return self.readlink("/run/current-system")

    def booted_system(self) -> str | None:
        return self.readlink("/run/booted-system")

    def profile_system(self) -> str | None:
        """The system profile's current generation (readable while the target is down too)."""
        profiles = self.root / "nix/var/nix/profiles"
        try:
            return os.readlink(profiles / os.readlink(profiles / "system"))
        except FileNotFoundError:
            return None

    def profile_generations(self) -> list[Generation]:
        """The system profile's generations, oldest first."""
        profiles = self.root / "nix/var/nix/profiles"
        found = []
        for link in profiles.glob("system-*-link") if profiles.is_dir() else ():
            m = re.fullmatch(r"system-(\d+)-link", link.name)
            if m:
                found.append(Generation(int(m.group(1)), os.readlink(link)))
        return sorted(found)

    def calls(self, program: str | None = None, boot: int | None = None) -> list[dict[str, Any]]:
        """The records in CALLS_LOG, oldest first, optionally of one program or one boot."""
        log = self.root / "var" / PurePosixPath(CALLS_LOG).relative_to("/var")
        if not log.exists():
            return []
        records = [json.loads(line) for line in log.read_text(errors="surrogateescape").splitlines() if line]
        return [
            r for r in records if (program is None or r["program"] == program) and (boot is None or r["boot"] == boot)
        ]

    def processes(self) -> list[int]:
        """Host pids of the processes in the target (empty once stopped)."""
        boot = self._boot
        return namespace_pids(boot.mnt_ns) if boot is not None and boot.mnt_ns else []
