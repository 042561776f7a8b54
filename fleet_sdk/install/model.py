"""The data of an install: what to install where (InstallRequest), what the target told us
(TargetFacts) and how it ended (InstallResult, printed by `fleet machine install --json`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleet_sdk.deploy.model import SecretFile
from fleet_sdk.tools.nixos_anywhere import PHASES

Status = Literal["installed", "adopted", "partial", "failed"]  # partial: --phases stopped before the reboot
MARKER = "/var/lib/fleet/install.json"  # on the installed machine: who it is and the layout it got


@dataclass(frozen=True)
class InstallRequest:
    """One machine's install. `host_key` is its public ssh host key line from vars and `host_key_pair`
    the (private, public) bytes installed as /etc/ssh/ssh_host_ed25519_key, so the new system is
    checked strictly from its first boot. `secrets` maps absolute paths on the new system (below
    /var/lib/sops-nix) to their files; `disk_keys` maps paths in the installer to disk-encryption keys."""

    machine: str
    target: str  # [user@]host[:port] of the server as it boots (root@ for the installer)
    flake: str  # a flake reference without "#"
    repo: Path  # the fleet repository: machines/<m>/{disko,facter,install}.json, known_hosts
    host_key: str
    host_key_pair: tuple[bytes, bytes] | None = None
    layout: str | None = None  # machines/<m>/disko.json as the stack renders it
    secrets: Mapping[str, SecretFile] = field(default_factory=dict)
    disk_keys: Mapping[str, bytes] = field(default_factory=dict)
    identity: bytes | None = None  # the deploy key (private), written to a 0600 file in RAM
    identity_file: Path | None = None  # or a key file given by the user
    phases: tuple[str, ...] = PHASES
    reinstall: bool = False  # the machine allows wiping itself (a changed layout, another OS)


@dataclass(frozen=True)
class TargetFacts:
    """What a target said about itself, and the host key it presented."""

    os: str = ""  # /etc/os-release ID
    variant: str = ""  # VARIANT_ID ("installer" in nixos-anywhere's kexec image)
    system: str = ""  # /run/current-system, resolved
    marker: Mapping[str, Any] = field(default_factory=dict)  # MARKER's JSON, when present
    host_key: str = ""  # "type base64" the target authenticated with

    @property
    def installer(self) -> bool:
        return self.variant == "installer"

    @property
    def nixos(self) -> bool:
        """A NixOS system booted from disk (not the installer)."""
        return self.os == "nixos" and not self.installer and bool(self.system)

    def describe(self) -> str:
        kind = "the NixOS installer" if self.installer else (self.os or "an unknown OS")
        return f"{kind}" + (f" running {self.system}" if self.system else "")


@dataclass
class InstallResult:
    machine: str
    status: Status
    phases: list[str] = field(default_factory=list)  # the phases run in this invocation
    system: str | None = None
    host_key_fingerprint: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "phases": list(self.phases),
            "system": self.system,
            "host_key_fingerprint": self.host_key_fingerprint,
            "error": self.error,
        }


@dataclass(frozen=True)
class InstallSettings:
    """Deadlines of an install. `timeout`: for the server to answer ssh, at first (a new server takes
    a minute or two) and after each reboot (kexec, then the installed system). `poll`: between
    attempts. `phase_timeout`: one nixos-anywhere phase (the install phase copies a whole system)."""

    timeout: float = 300.0
    poll: float = 5.0
    connect_timeout: int = 10
    phase_timeout: float = 3600.0
