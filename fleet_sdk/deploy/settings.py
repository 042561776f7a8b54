"""How a deploy behaves: its deadlines and policies. Every wait of the engine has one of these as its
bound, so tests scale time down through settings only, never through other code paths.

Defaults follow reference/deploy.md §8. The spec's deploy settings will map onto this later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fleet_sdk.errors import ConfigError

RebootPolicy = Literal["never", "if-needed"]
UnitFailurePolicy = Literal["rollback", "keep"]
BuildOn = Literal["local", "remote"]


@dataclass(frozen=True)
class DeploySettings:
    connect_timeout: int = 10  # ssh ConnectTimeout, seconds
    command_timeout: float = 120  # one remote command (not the copy, the switch or a reboot)
    copy_timeout: float = 3600  # nix copy, or the build on the target
    switch_timeout: float = 600  # switch-to-configuration may run this long before it counts as hung
    confirm_timeout: float = 60  # after the switch, how long new connections are tried
    # the watchdog restores the previous system this long after it is armed unless disarmed; it must
    # outlast a switch and its confirmation, or it would undo a slow but good deploy
    watchdog_seconds: int = 900
    reboot_timeout: float = 600  # a reboot: down and up again
    lock_seconds: int = 7200  # the target's deploy lock expires after this, should its holder vanish
    poll_interval: float = 1.0
    reboot: RebootPolicy = "never"
    on_unit_failure: UnitFailurePolicy = "rollback"  # exit 4 of switch-to-configuration
    build_on: BuildOn = "local"
    health_commands: tuple[str, ...] = ()  # shell commands on the target that must exit 0
    health_units: tuple[str, ...] = ()  # systemd units that must be active
    secrets_root: str = "/var/lib/sops-nix"  # the folder the uploaded secrets replace as a whole
    state_dir: str = "/run/fleet-deploy"  # on the target: lock, canary, switch output; gone at reboot
    ssh_options: tuple[str, ...] = ()  # more ssh options, e.g. ("-o", "ProxyJump=bastion")

    def __post_init__(self) -> None:
        if self.watchdog_seconds <= self.switch_timeout + self.confirm_timeout:
            raise ConfigError(
                f"deploy settings: watchdog_seconds ({self.watchdog_seconds}) must exceed switch_timeout + "
                f"confirm_timeout ({self.switch_timeout:g} + {self.confirm_timeout:g}), or the watchdog "
                "would roll back a slow but good switch"
            )
        if self.lock_seconds <= self.watchdog_seconds:
            raise ConfigError(
                f"deploy settings: lock_seconds ({self.lock_seconds}) must exceed watchdog_seconds "
                f"({self.watchdog_seconds}), so no deploy starts while a watchdog may still fire"
            )
        for name in ("secrets_root", "state_dir"):
            value = getattr(self, name)
            if not value.startswith("/") or value.rstrip("/") != value or ".." in value.split("/"):
                raise ConfigError(f"deploy settings: {name} {value!r} must be an absolute folder path")
