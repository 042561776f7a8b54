"""Service instances and their roles, as clan's inventory declares them (clan.md §7)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fleet_sdk.spec.generators import Generator

# Roles of clan-core's built-in services; an instance of one of these may only use these roles.
BUILTIN_ROLES: dict[str, tuple[str, ...]] = {
    "admin": ("default",),
    "borgbackup": ("client", "server"),
    "certificates": ("ca", "default"),
    "emergency-access": ("default",),
    "internet": ("default",),
    "sshd": ("client", "server"),
    "tor": ("client", "server"),
    "users": ("default",),
    "wireguard": ("controller", "peer"),
    "zerotier": ("controller", "moon", "peer"),
}


class Role(BaseModel):
    """Who plays a role: machines named explicitly plus every machine carrying one of the tags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    machines: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    settings: dict[str, Any] = Field(default_factory=dict)
    generators: tuple[Generator, ...] = ()  # declared by every member of the role


class ServiceInstance(BaseModel):
    """One instance of a service module (`inventory.instances.<name>`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    module: str | None = None  # defaults to the instance name, as in clan
    input: str | None = None  # None: clan-core's built-in modules
    roles: dict[str, Role] = Field(default_factory=dict)

    @property
    def module_name(self) -> str:
        return self.module or self.name
