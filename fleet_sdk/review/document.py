"""The parts of a machine's entry in the plan document (`fleet-plan/2`) that come from the spec and
the fleet repository rather than from the recorded graph: its disk layout and the partition tables
disko will create, its generators (where each is declared) and whether the repository holds them,
its ZeroTier roles.

Nothing here decrypts a secret or runs a program: `stored` is clan's `exists` (every declared file
present and the validation hash current), read from the file tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet_sdk.install.records import layout_digest
from fleet_sdk.spec import Fleet, Machine
from fleet_sdk.spec.disks.model import Gpt
from fleet_sdk.spec.disks.partitions import SECTOR, partition_plan, resolve
from fleet_sdk.vars.store import VarsStore, generator_id
from fleet_sdk.zerotier import service

SCHEMA = "fleet-plan/2"
# the role a machine playing several in one ZeroTier instance is listed with
ZEROTIER_ROLES = ("controller", "moon", "peer")


def disko(machine: Machine) -> dict[str, Any]:
    """`{"digest", "partitions"}`: the digest of machines/<m>/disko.json as the install records it,
    and per GPT disk the partitions in sgdisk's creation order. Sectors and bytes are those of the
    machine's host disk (as `fleet disko check` shows them), null when no host tells its size."""
    if machine.disks is None:
        return {"digest": None, "partitions": []}
    size = machine.disk_bytes
    partitions: list[dict[str, Any]] = []
    for key, disk in sorted(machine.disks.disk.items()):
        if not isinstance(disk.content, Gpt):
            continue
        specs = resolve(disk.content, "disk", disk.name or key.replace("/", "_"))
        planned = partition_plan(machine.disks, key, size) if size is not None else None
        for number, spec in enumerate(specs, start=1):
            p = planned[number - 1] if planned is not None else None
            partitions.append(
                {
                    "disk": key,
                    "number": number,
                    "name": spec.name,
                    "label": spec.label,
                    "type": spec.type_code,
                    "start": spec.start,  # as sgdisk --new=number:start:end is given them
                    "end": spec.end,
                    "sectors": [p.start_sector, p.end_sector] if p is not None else None,
                    "bytes": (p.end_sector - p.start_sector + 1) * SECTOR if p is not None else None,
                }
            )
    return {"digest": layout_digest(machine.disks.render()), "partitions": partitions}


def generators(fleet: Fleet, machine: Machine, store: VarsStore | None) -> list[dict[str, Any]]:
    """`[{"name", "share", "stored", "declared"}]` of `fleet.generators_of(machine)`, by name; `stored`
    is null without a repository; `declared` says where: "python" (the stack), "stock" (a built-in of
    fleet_sdk) or "flake" (clan.core.vars.generators of the machine's configuration, vars.declared)."""
    return [
        {
            "name": g.name,
            "share": g.share,
            "stored": store.complete(generator_id(g, machine.name), g) if store is not None else None,
            "declared": g.origin,
        }
        for g in fleet.generators_of(machine)
    ]


class ZeroTierRoles:
    """Each machine's role in each ZeroTier instance of the fleet, the members looked up once."""

    def __init__(self, fleet: Fleet) -> None:
        self.members = {
            inst.name: {role: set(fleet.members(inst.name, role)) for role in ZEROTIER_ROLES}
            for inst in fleet.instances
            if service.is_zerotier(inst)
        }

    def of(self, machine: str) -> dict[str, str]:
        """`{instance: role}` for the instances `machine` is a member of (controller before moon
        before peer when it plays several)."""
        out = {}
        for instance, roles in self.members.items():
            role = next((r for r in ZEROTIER_ROLES if machine in roles[r]), None)
            if role is not None:
                out[instance] = role
        return out


def machine_additions(fleet: Fleet, repo: Path | None) -> dict[str, dict[str, Any]]:
    """Per machine: its `disko`, `generators` and `zerotier` entries."""
    store = VarsStore(repo) if repo is not None else None
    zerotier = ZeroTierRoles(fleet)
    return {
        m.name: {"disko": disko(m), "generators": generators(fleet, m, store), "zerotier": zerotier.of(m.name)}
        for m in fleet.machines
    }
