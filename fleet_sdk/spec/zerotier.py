"""clan's zerotier service (reference/clan.md §5): roles controller (exactly one), moon (at most
four, with stable endpoints) and peer; controller settings allowedIps / allowedIds (members running
their own zerotier-one, e.g. darwin workstations, given by member id); an optional pinned networkId.

Its generators are clan's, all shared, so clan's module on the machines reads them:
zerotier-identity-<m> (identity-secret), zerotier-network-<instance> (network-id, from the
controller's identity) and zerotier-ip-<m>-<instance> (ip).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_sdk.spec.generators import Generator, GeneratorFile

if TYPE_CHECKING:
    from fleet_sdk.spec.fleet import Fleet
    from fleet_sdk.spec.services import ServiceInstance

MODULE = "zerotier"
MAX_MOONS = 4
_HEX10 = re.compile(r"^[0-9a-f]{10}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


def is_zerotier(instance: ServiceInstance) -> bool:
    return instance.module_name == MODULE and instance.input in (None, "clan-core")


def external_ids(instance: ServiceInstance) -> list[str]:
    role = instance.roles.get("controller")
    return list(role.settings.get("allowedIds", [])) if role else []


def problems(fleet: Fleet, instance: ServiceInstance) -> list[str]:
    at = f"instance {instance.name!r}"
    out: list[str] = []
    controllers = fleet.members(instance.name, "controller")
    if len(controllers) != 1:
        out.append(f"{at}: roles.controller: needs exactly one controller machine, has {len(controllers)}")
    moons = fleet.members(instance.name, "moon")
    if len(moons) > MAX_MOONS:
        out.append(f"{at}: roles.moon: at most {MAX_MOONS} moons, has {len(moons)}")
    moon_role = instance.roles.get("moon")
    for name in moons:
        settings = dict(moon_role.settings) if moon_role else {}
        if moon_role and name in moon_role.machines:
            settings |= moon_role.settings.get("machines", {}).get(name, {})
        if not settings.get("stableEndpoints"):
            out.append(f"{at}: roles.moon: {name!r} needs settings.stableEndpoints (its public addresses)")
    role = instance.roles.get("controller")
    settings = role.settings if role else {}
    for member in settings.get("allowedIds", []):
        if not isinstance(member, str) or not _HEX10.match(member):
            out.append(f"{at}: roles.controller.settings.allowedIds: {member!r} is not a member id (10 hex digits)")
        elif member == "0000000000" or member.startswith("ff"):
            out.append(f"{at}: roles.controller.settings.allowedIds: {member} is a reserved ZeroTier address")
    for ip in settings.get("allowedIps", []):
        try:
            ipaddress.IPv6Address(ip)
        except ValueError:
            out.append(f"{at}: roles.controller.settings.allowedIps: {ip!r} is not an IPv6 address")
    nwid = settings.get("networkId")
    if nwid is not None and (not isinstance(nwid, str) or not _HEX16.match(nwid)):
        out.append(f"{at}: roles.controller.settings.networkId: {nwid!r} is not a network id (16 hex digits)")
    unknown = set(settings) - {"allowedIps", "allowedIds", "public", "networkId"}
    if unknown:
        out.append(f"{at}: roles.controller.settings: unknown {', '.join(sorted(unknown))}")
    return out


def members(fleet: Fleet, instance: ServiceInstance) -> list[str]:
    """Machines of the instance, in any role."""
    return sorted({m for role in instance.roles for m in fleet.members(instance.name, role)})


def _identity_generator(machine: str) -> Generator:
    def identity(inputs: dict[str, dict[str, bytes]], prompts: dict[str, str], out: Path) -> None:
        from fleet_sdk.zerotier import Identity

        (out / "identity-secret").write_text(Identity.generate().secret())

    return Generator(
        name=f"zerotier-identity-{machine}", share=True, files=(GeneratorFile(name="identity-secret"),), python=identity
    )


def _network_generator(instance: str, controller: str, pinned: str | None) -> Generator:
    dep = f"zerotier-identity-{controller}"

    def network(inputs: dict[str, dict[str, bytes]], prompts: dict[str, str], out: Path) -> None:
        from fleet_sdk.zerotier import Identity, network_id

        address = Identity.parse(inputs[dep]["identity-secret"].decode()).address
        nwid = pinned or network_id(address)
        if not nwid.startswith(address):
            raise ValueError(f"networkId {nwid} does not belong to the controller {controller} ({address})")
        (out / "network-id").write_text(nwid)

    return Generator(
        name=f"zerotier-network-{instance}",
        share=True,
        dependencies=(dep,),
        files=(GeneratorFile(name="network-id", secret=False, deploy=False),),
        validation={"networkId": pinned} if pinned else None,
        python=network,
    )


def _ip_generator(machine: str, instance: str) -> Generator:
    identity, network = f"zerotier-identity-{machine}", f"zerotier-network-{instance}"

    def ip(inputs: dict[str, dict[str, bytes]], prompts: dict[str, str], out: Path) -> None:
        from fleet_sdk.zerotier import Identity, rfc4193

        node = Identity.parse(inputs[identity]["identity-secret"].decode()).address
        (out / "ip").write_text(rfc4193(inputs[network]["network-id"].decode(), node))

    return Generator(
        name=f"zerotier-ip-{machine}-{instance}",
        share=True,
        dependencies=(identity, network),
        files=(GeneratorFile(name="ip", secret=False, deploy=False),),
        python=ip,
    )


def generators(fleet: Fleet, instance: ServiceInstance, machine: str) -> list[Generator]:
    """What a member machine declares for the instance; the controller also declares the network's
    input (its own identity) so every member's network generator can depend on it."""
    controllers = fleet.members(instance.name, "controller")
    if machine not in members(fleet, instance) or len(controllers) != 1:
        return []
    controller = controllers[0]
    role = instance.roles.get("controller")
    pinned = role.settings.get("networkId") if role else None
    out = [_identity_generator(machine), _network_generator(instance.name, controller, pinned)]
    if controller != machine:
        out.append(_identity_generator(controller))
    out.append(_ip_generator(machine, instance.name))
    return out
