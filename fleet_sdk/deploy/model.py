"""The data of a deploy: what to deploy where (DeployRequest), what the target told us (Facts) and how it
ended (DeployResult, printed by `fleet machine deploy --json`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

MachineClass = Literal["nixos", "darwin"]
Status = Literal["unchanged", "deployed", "rolled-back", "failed"]


class SecretFile(NamedTuple):
    """One file to upload: its bytes and the owner, group and mode it gets on the target."""

    data: bytes
    owner: str = "root"
    group: str = "root"
    mode: int = 0o400


@dataclass(frozen=True)
class DeployRequest:
    """One machine's deploy. The host is authenticated by `host_key` (its ssh public key line, from
    which a known_hosts file is written) or by `known_hosts` (a file used as it is), never trusted
    on first use. `secrets` maps remote paths under DeploySettings.secrets_root to their files."""

    machine: str
    target: str  # [user@]host[:port]; a non-root user runs what needs root through `sudo -n`
    system: str  # the store path of the system closure (toplevel)
    machine_class: MachineClass = "nixos"
    host_key: str | None = None
    known_hosts: Path | None = None
    identity_file: Path | None = None
    secrets: Mapping[str, SecretFile] = field(default_factory=dict)
    drv_path: str | None = None  # the closure's derivation, to build it on the target


@dataclass(frozen=True)
class Facts:
    """What the preflight found on the target (all paths resolved; "" when absent)."""

    current: str = ""  # /run/current-system
    profile: str = ""  # the system profile's target
    generation: int | None = None  # of the system profile
    booted: Mapping[str, str] = field(default_factory=dict)  # kernel, initrd, kernel-modules of /run/booted-system
    digest: str = ""  # of the secrets uploaded last
    launcher: str = "setsid"  # how commands are detached: systemd | setsid | nohup

    @classmethod
    def parse(cls, text: str) -> Facts:
        """From the preflight's `key=value` lines (scripts.PREFLIGHT)."""
        values = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
        booted = {k.removeprefix("booted_"): v for k, v in values.items() if k.startswith("booted_") and v}
        return cls(
            current=values.get("current", ""),
            profile=values.get("profile", ""),
            generation=generation(values.get("profile_link", "")),
            booted=booted,
            digest=values.get("digest", ""),
            launcher=values.get("launcher", "setsid"),
        )


def generation(link: str) -> int | None:
    """The number of a profile generation link, `system-12-link` -> 12."""
    number = link.removeprefix("system-").removesuffix("-link")
    return int(number) if number.isdigit() and link.startswith("system-") else None


@dataclass(frozen=True)
class DeployResult:
    machine: str
    status: Status
    previous: str = ""
    current: str = ""
    generation: int | None = None
    reboot_required: bool = False
    rolled_back: bool = False
    rebooted: bool = False
    failed_units: tuple[str, ...] = ()
    failed_check: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("unchanged", "deployed")

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "machine": self.machine,
            "status": self.status,
            "previous": self.previous or None,
            "current": self.current or None,
            "generation": self.generation,
            "reboot_required": self.reboot_required,
            "rolled_back": self.rolled_back,
            "rebooted": self.rebooted,
        }
        if self.failed_units:
            doc["failed_units"] = list(self.failed_units)
        if self.failed_check:
            doc["failed_check"] = self.failed_check
        if self.error:
            doc["error"] = self.error
        return doc
