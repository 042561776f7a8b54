"""clan's zerotier service (reference/clan.md §5): roles controller (exactly one), moon (at most
four, with stable endpoints) and peer; controller settings allowedIps / allowedIds (members running
their own zerotier-one, e.g. darwin workstations or a phone, given by address or by member id);
an optional pinned networkId.

Its generators are clan's, all shared, so clan's module on the machines reads them:
zerotier-identity-<m> (identity-secret), zerotier-network-<instance> (network-id, from the
controller's identity) and zerotier-ip-<m>-<instance> (ip).

A machine declares only its OWN identity (clan's eval test `test_identity_scoped_to_own_machine`):
declaring another's would link that machine's private identity to it. The network generator's
dependency on the controller's identity is resolved fleet-wide as a shared generator, as clan does
for a dependency the machine does not declare itself.

The service registers itself with the spec (`SERVICE`, at the end): Fleet validation and
`Fleet.generators_of` reach it only through fleet_sdk.spec.services.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_sdk.spec.generators import Generator, GeneratorFile
from fleet_sdk.spec.services import register_service

if TYPE_CHECKING:
    from fleet_sdk.spec.fleet import Fleet
    from fleet_sdk.spec.services import ServiceInstance

MODULE = "zerotier"
MAX_MOONS = 4
_HEX10 = re.compile(r"^[0-9a-f]{10}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


def is_zerotier(instance: ServiceInstance) -> bool:
    return instance.module_name == MODULE and instance.input in (None, "clan-core")


IDENTITY_PREFIX = "zerotier-identity-"


def identity_generator_name(machine: str) -> str:
    return f"{IDENTITY_PREFIX}{machine}"


def external_members(instance: ServiceInstance) -> dict[str, str | None]:
    """Members that run their own zerotier-one: member id -> the address they were given by
    (allowedIps), or None when given by id (allowedIds). Assumes `problems` found none."""
    role = instance.roles.get("controller")
    settings = role.settings if role else {}
    out: dict[str, str | None] = {m: None for m in settings.get("allowedIds", [])}
    for ip in settings.get("allowedIps", []):
        out[member_of_address(ip)] = ipaddress.IPv6Address(ip).compressed
    return dict(sorted(out.items()))


def member_of_address(ip: str) -> str:
    """The member id in an RFC 4193 ZeroTier address: its last five bytes."""
    return ipaddress.IPv6Address(ip).packed[11:].hex()


def network_of_address(ip: str) -> str:
    """The network id in an RFC 4193 ZeroTier address: bytes 1 to 8."""
    return ipaddress.IPv6Address(ip).packed[1:9].hex()


def _address_problem(ip: object, pinned: object) -> str | None:
    if not isinstance(ip, str):  # ipaddress would take an int, a bool or 16 bytes as an address
        return f"{ip!r} is not an IPv6 address (a string such as fd…:9993:…)"
    try:
        packed = ipaddress.IPv6Address(ip).packed
    except ValueError:
        return f"{ip!r} is not an IPv6 address"
    if packed[0] != 0xFD or packed[9:11] != b"\x99\x93":
        return (
            f"{ip} is not a ZeroTier RFC 4193 member address (fd<network id>9993<member id>, "
            "as `zerotier-cli listnetworks` shows it)"
        )
    member = packed[11:].hex()
    if member == "0000000000" or member.startswith("ff"):
        return f"{ip} holds the reserved ZeroTier address {member}"
    if isinstance(pinned, str) and _HEX16.match(pinned) and packed[1:9].hex() != pinned:
        return f"{ip} is not in network {pinned}'s range ({_prefix(pinned)}/88)"
    return None


def _prefix(nwid: str) -> str:
    return str(ipaddress.IPv6Address(bytes([0xFD]) + bytes.fromhex(nwid) + b"\x99\x93" + bytes(5)))


def address_outside(nwid: str, ip: str) -> str | None:
    """Why `ip` (an allowedIps entry) cannot be a member of network `nwid`, or None."""
    if network_of_address(ip) != nwid:
        return f"{ip} is not in network {nwid}'s range ({_prefix(nwid)}/88)"
    return None


def problems(fleet: Fleet, instance: ServiceInstance) -> list[str]:
    at = f"instance {instance.name!r}"
    out: list[str] = []
    controllers = fleet.members(instance.name, "controller")
    if len(controllers) != 1:
        out.append(f"{at}: roles.controller: needs exactly one controller machine, has {len(controllers)}")
    moons = fleet.members(instance.name, "moon")
    if len(moons) > MAX_MOONS:
        out.append(f"{at}: roles.moon: at most {MAX_MOONS} moons, has {len(moons)}")
    out += _moon_problems(at, instance, moons)
    role = instance.roles.get("controller")
    settings = role.settings if role else {}
    for key in ("allowedIds", "allowedIps"):
        if not isinstance(settings.get(key, []), list | tuple):
            out.append(f"{at}: roles.controller.settings.{key}: give a list, not {settings[key]!r}")
            return out
    for member in settings.get("allowedIds", []):
        if not isinstance(member, str) or not _HEX10.match(member):
            out.append(f"{at}: roles.controller.settings.allowedIds: {member!r} is not a member id (10 hex digits)")
        elif member == "0000000000" or member.startswith("ff"):
            out.append(f"{at}: roles.controller.settings.allowedIds: {member} is a reserved ZeroTier address")
    for ip in settings.get("allowedIps", []):
        if p := _address_problem(ip, settings.get("networkId")):
            out.append(f"{at}: roles.controller.settings.allowedIps: {p}")
    if not isinstance(settings.get("public", False), bool):
        out.append(f"{at}: roles.controller.settings.public: give true or false, not {settings['public']!r}")
    nwid = settings.get("networkId")
    if nwid is not None and (not isinstance(nwid, str) or not _HEX16.match(nwid)):
        out.append(f"{at}: roles.controller.settings.networkId: {nwid!r} is not a network id (16 hex digits)")
    unknown = set(settings) - {"allowedIps", "allowedIds", "public", "networkId"}
    if unknown:
        out.append(f"{at}: roles.controller.settings: unknown {', '.join(sorted(unknown))}")
    if not out:
        out += _duplicate_members(at, settings)
    return out


def _duplicate_members(at: str, settings: dict[str, Any]) -> list[str]:
    """A member given twice (two ids, two spellings of one address, or an id and its address) is
    admitted once: the second entry is a typo for another member, who would be left out."""
    given = [(m, f"allowedIds {m}") for m in settings.get("allowedIds", [])]
    given += [(member_of_address(ip), f"allowedIps {ip}") for ip in settings.get("allowedIps", [])]
    seen: dict[str, str] = {}
    out = []
    for member, entry in given:
        if member in seen:
            out.append(f"{at}: roles.controller.settings: member {member} is given twice ({seen[member]}, {entry})")
        seen.setdefault(member, entry)
    return out


def _moon_problems(at: str, instance: ServiceInstance, moons: list[str]) -> list[str]:
    """Each moon needs stableEndpoints (a list of its public addresses), from the role's settings or
    its own entry in settings.machines.<name>."""
    role = instance.roles.get("moon")
    base = dict(role.settings) if role else {}
    per_machine = base.pop("machines", {})
    if not isinstance(per_machine, dict) or not all(isinstance(v, dict) for v in per_machine.values()):
        return [f"{at}: roles.moon.settings.machines: give a mapping of machine name to its settings"]
    out = []
    for name in moons:
        endpoints = {**base, **per_machine.get(name, {})}.get("stableEndpoints")
        if not endpoints:
            out.append(f"{at}: roles.moon: {name!r} needs settings.stableEndpoints (its public addresses)")
        elif not isinstance(endpoints, list | tuple) or not all(isinstance(e, str) and e for e in endpoints):
            out.append(
                f"{at}: roles.moon: {name!r}: settings.stableEndpoints: give a list of addresses, not {endpoints!r}"
            )
    return out


def members(fleet: Fleet, instance: ServiceInstance) -> list[str]:
    """Machines of the instance, in any role."""
    return sorted({m for role in instance.roles for m in fleet.members(instance.name, role)})


def _identity_generator(machine: str) -> Generator:
    def identity(inputs: dict[str, dict[str, bytes]], prompts: dict[str, str], out: Path) -> None:
        from fleet_sdk.zerotier.identity import Identity

        (out / "identity-secret").write_text(Identity.generate().secret())

    return Generator(
        name=identity_generator_name(machine),
        origin="stock",
        share=True,
        files=(GeneratorFile(name="identity-secret"),),
        python=identity,
    )


def _network_generator(instance: str, controller: str, pinned: str | None) -> Generator:
    dep = identity_generator_name(controller)

    def network(inputs: dict[str, dict[str, bytes]], prompts: dict[str, str], out: Path) -> None:
        from fleet_sdk.zerotier.identity import Identity, network_id

        address = Identity.parse(inputs[dep]["identity-secret"].decode()).address
        nwid = pinned or network_id(address)
        if not nwid.startswith(address):
            raise ValueError(f"networkId {nwid} does not belong to the controller {controller} ({address})")
        (out / "network-id").write_text(nwid)

    return Generator(
        name=f"zerotier-network-{instance}",
        origin="stock",
        share=True,
        dependencies=(dep,),
        files=(GeneratorFile(name="network-id", secret=False, deploy=False),),
        validation={"networkId": pinned} if pinned else None,
        python=network,
    )


def _ip_generator(machine: str, instance: str) -> Generator:
    identity, network = identity_generator_name(machine), f"zerotier-network-{instance}"

    def ip(inputs: dict[str, dict[str, bytes]], prompts: dict[str, str], out: Path) -> None:
        from fleet_sdk.zerotier.identity import Identity, rfc4193

        node = Identity.parse(inputs[identity]["identity-secret"].decode()).address
        (out / "ip").write_text(rfc4193(inputs[network]["network-id"].decode(), node))

    return Generator(
        name=f"zerotier-ip-{machine}-{instance}",
        origin="stock",
        share=True,
        dependencies=(identity, network),
        files=(GeneratorFile(name="ip", secret=False, deploy=False),),
        python=ip,
    )


def generators(fleet: Fleet, instance: ServiceInstance, machine: str) -> list[Generator]:
    """What a member machine declares for the instance: its own identity, the network id (whose
    input, the controller's identity, only the controller declares) and its address."""
    controllers = fleet.members(instance.name, "controller")
    if machine not in members(fleet, instance) or len(controllers) != 1:
        return []
    controller = controllers[0]
    role = instance.roles.get("controller")
    pinned = role.settings.get("networkId") if role else None
    return [
        _identity_generator(machine),
        _network_generator(instance.name, controller, pinned),
        _ip_generator(machine, instance.name),
    ]


def identity_problems(machine: str, generator: Generator) -> list[str]:
    """A machine declares only its own identity (clan's `test_identity_scoped_to_own_machine`)."""
    owner = generator.name.removeprefix(IDENTITY_PREFIX)
    if owner == generator.name or owner == machine:
        return []
    return [
        f"machine {machine!r}: generator {generator.name!r} is the ZeroTier identity of {owner!r}; declaring it "
        f"would give {machine!r} that private key. Remove it from {machine!r}: a dependency on it is "
        "resolved as a shared generator without declaring it"
    ]


class ZeroTierService:
    """clan-core's zerotier service as the spec sees it (fleet_sdk.spec.services.ServiceDefinition)."""

    module = MODULE

    def handles(self, instance: ServiceInstance) -> bool:
        return is_zerotier(instance)

    def problems(self, fleet: Fleet, instance: ServiceInstance) -> list[str]:
        return problems(fleet, instance)

    def generators(self, fleet: Fleet, instance: ServiceInstance, machine: str) -> list[Generator]:
        return generators(fleet, instance, machine)

    def generator_problems(self, machine: str, generator: Generator) -> list[str]:
        return identity_problems(machine, generator)


SERVICE = ZeroTierService()
register_service(SERVICE)
