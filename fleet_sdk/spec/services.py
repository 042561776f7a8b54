"""Service instances and their roles, as clan's inventory declares them (clan.md §7), and the
registry of service definitions: the services whose instances the spec checks and whose generators
their members declare. The spec names no service itself; each registers from its own module
(fleet_sdk.zerotier.service, imported by fleet_sdk's __init__ so every user of the spec has it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from fleet_sdk.spec.generators import Generator

if TYPE_CHECKING:
    from fleet_sdk.spec.fleet import Fleet

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


class ServiceDefinition(Protocol):
    """A service module the spec knows: its instances' checks and the generators of their members."""

    @property
    def module(self) -> str:
        """The service module (ServiceInstance.module_name) whose instances this may handle."""
        ...

    def handles(self, instance: ServiceInstance) -> bool:
        """Whether `instance` is this service (its module, and where the module comes from)."""
        ...

    def problems(self, fleet: Fleet, instance: ServiceInstance) -> list[str]:
        """The instance's problems, each naming it; run once the fleet's own checks pass."""
        ...

    def generators(self, fleet: Fleet, instance: ServiceInstance, machine: str) -> list[Generator]:
        """What `machine` declares as a member of the instance (nothing when it is none)."""
        ...

    def generator_problems(self, machine: str, generator: Generator) -> list[str]:
        """Fleet-wide: why `machine` must not declare `generator` (e.g. another machine's secret)."""
        ...


_SERVICES: dict[str, ServiceDefinition] = {}


def register_service(service: ServiceDefinition) -> None:
    """Make `service` known to every Fleet: its checks, generators and generator rules apply."""
    _SERVICES[service.module] = service


def service_of(instance: ServiceInstance) -> ServiceDefinition | None:
    """The registered service handling `instance`, if any."""
    service = _SERVICES.get(instance.module_name)
    return service if service is not None and service.handles(instance) else None


def registered_services() -> list[ServiceDefinition]:
    return list(_SERVICES.values())
