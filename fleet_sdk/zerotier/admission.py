"""Admitting members on a ZeroTier controller: POST {"authorized": true} to its local API
(/controller/network/<nwid>/member/<id>, reference/clan.md §5.4), over SSH, with the controller's
authtoken read on the controller itself; deauthorizing them, {"authorized": false}, when they leave.

Deauthorizing takes network and member ids, not names: the graph runs it when an admission is
deleted, after its machine may have left the fleet."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.errors import FleetError
from fleet_sdk.fs import atomic as fsutil
from fleet_sdk.fs.private import private_dir
from fleet_sdk.sops import operator_identities
from fleet_sdk.spec import Fleet, ServiceInstance
from fleet_sdk.tools import ssh
from fleet_sdk.tools.runner import LOCAL, Runner
from fleet_sdk.vars.store import GeneratorId, VarsStore
from fleet_sdk.zerotier import service
from fleet_sdk.zerotier.identity import member_id

AUTHTOKEN = "/var/lib/zerotier-one/authtoken.secret"


@dataclass(frozen=True)
class Admission:
    instance: str
    controller: str
    network_id: str
    members: dict[str, str]  # name (machine or member id) -> member id


def resolve_admission(store: VarsStore, fleet: Fleet, instance: str, members: list[str] | None = None) -> Admission:
    inst = fleet.instance(instance)
    if not service.is_zerotier(inst):
        raise FleetError(f"instance {instance!r} is not a zerotier instance")
    controller = fleet.members(instance, "controller")[0]
    nwid = store.public(GeneratorId(f"zerotier-network-{instance}", None), "network-id")
    if nwid is None:
        raise FleetError(f"instance {instance!r}: no network id yet; run `fleet vars generate {controller}`")
    known: dict[str, str] = {}
    for machine in service.members(fleet, inst):
        ip = store.public(GeneratorId(f"zerotier-ip-{machine}-{instance}", None), "ip")
        if ip is not None:
            known[machine] = member_id(ip.decode())
    outside = []
    for external, address in service.external_members(inst).items():
        if address is not None and (why := service.address_outside(nwid.decode(), address)):
            outside.append(why)
        known[external] = external
    if outside:
        raise FleetError(
            f"instance {instance!r}: roles.controller.settings.allowedIps: {'; '.join(outside)}; "
            "give the addresses `zerotier-cli listnetworks` shows on those members, or their member ids "
            "in allowedIds"
        )
    # by default the members the fleet admits: a disabled machine is deauthorized, not admitted again
    wanted = members or sorted(m for m in known if m not in fleet.names or fleet.machine(m).enabled)
    missing = [m for m in wanted if m not in known]
    if missing:
        raise FleetError(
            f"instance {instance!r}: no member id for {', '.join(missing)}; run `fleet vars generate` or "
            "list external members in roles.controller.settings.allowedIps or allowedIds"
        )
    return Admission(instance, controller, nwid.decode(), {m: known[m] for m in wanted})


def script(admission: Admission, authorized: bool = True) -> str:
    """The shell script run on the controller: one POST per member, authorising it (or not)."""
    lines = [
        "set -eu",
        f"token=$(cat {AUTHTOKEN})",
    ]
    body = json.dumps({"authorized": authorized})
    done = "admitted" if authorized else "deauthorized"
    for name, mid in sorted(admission.members.items()):
        url = f"http://localhost:9993/controller/network/{admission.network_id}/member/{mid}"
        lines.append(
            f'curl -fsS -X POST -H "X-ZT1-AUTH: $token" -d {shlex.quote(body)} {shlex.quote(url)} >/dev/null'
            f" && echo {shlex.quote(f'{done} {name} ({mid})')}"
        )
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def deploy_key_file(store: VarsStore) -> Iterator[Path | None]:
    """The fleet's deploy key for ssh -i, if generated: a 0600 file in a private RAM folder that is
    removed however the call ends (privatedir; a killed run's is removed by the next)."""
    secret = store.file_dir(GeneratorId("deploy-key", None), "id_ed25519") / "secret"
    if not secret.is_file():
        yield None
        return
    plaintext = store.secret(GeneratorId("deploy-key", None), "id_ed25519", operator_identities())
    with private_dir("ssh") as folder:
        path = folder / "id_ed25519"
        fsutil.create(path, plaintext)
        yield path


def admit(
    store: VarsStore, fleet: Fleet, admission: Admission, target: str | None, runner: Runner | None = None
) -> str:
    """Admit on the controller at `target` ([user@]host[:port]), by default its target host."""
    runner = LOCAL if runner is None else runner
    host = target or fleet.machine(admission.controller).target_host
    if not host:
        raise FleetError(
            f"instance {admission.instance!r}: controller {admission.controller!r} has no target host; "
            "pass --target-host"
        )
    with deploy_key_file(store) as key:
        return ssh.run_script(runner, host, script(admission), key).text


_MEMBER = re.compile(r"[0-9a-f]{10}")
_NETWORK = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Deauthorization:
    admission: Admission  # the members to deauthorize (by member id), on `admission.controller`'s network
    kept: dict[str, str]  # member id -> the fleet member it still is (not deauthorized)


def resolve_deauthorization(
    store: VarsStore, fleet: Fleet, network_id: str, member_ids: list[str], force: bool = False
) -> Deauthorization:
    """The members `member_ids` of network `network_id` to deauthorize. Unless `force`, a member the
    fleet still admits (an enabled machine of an instance with that network id, or an external
    member of one) is kept: e.g. the old admission of a renamed machine, deleted after the new one
    admitted the same member."""
    if not _NETWORK.fullmatch(network_id):
        raise FleetError(f"network id {network_id!r}: give the 16 lower-case hex digits of a ZeroTier network id")
    bad = [m for m in member_ids if not _MEMBER.fullmatch(m)]
    if bad or not member_ids:
        raise FleetError(
            f"member id {', '.join(map(repr, bad)) or '(none)'}: give the 10 lower-case hex digits of each "
            "ZeroTier member (the last 10 of its address)"
        )
    instances = _instances_of(store, fleet, network_id)
    admitted = _admitted(fleet, store, instances, network_id)
    controller = fleet.members(instances[0].name, "controller")[0] if instances else ""
    kept = {} if force else {m: admitted[m] for m in member_ids if m in admitted}
    members = {m: m for m in member_ids if m not in kept}
    return Deauthorization(Admission("", controller, network_id, members), kept)


def _instances_of(store: VarsStore, fleet: Fleet, network_id: str) -> list[ServiceInstance]:
    """The fleet's zerotier instances whose network id (in vars) is `network_id`."""
    found = []
    for inst in fleet.instances:
        if service.is_zerotier(inst):
            nwid = store.public(GeneratorId(f"zerotier-network-{inst.name}", None), "network-id")
            if nwid is not None and nwid.decode().strip() == network_id:
                found.append(inst)
    return found


def _admitted(fleet: Fleet, store: VarsStore, instances: list[ServiceInstance], network_id: str) -> dict[str, str]:
    """member id -> name of every member the fleet admits to the network (its controller too)."""
    found: dict[str, str] = {network_id[:10]: "its controller"}
    for inst in instances:
        for machine in service.members(fleet, inst):
            ip = store.public(GeneratorId(f"zerotier-ip-{machine}-{inst.name}", None), "ip")
            if ip is not None and fleet.machine(machine).enabled:
                found[member_id(ip.decode())] = f"machine {machine}"
        for external in service.external_members(inst):
            found[external] = f"an external member of instance {inst.name}"
    return found


def deauthorize(
    store: VarsStore, fleet: Fleet, plan: Deauthorization, target: str | None, runner: Runner | None = None
) -> str:
    """Deauthorize on the controller at `target`, by default the target host of the controller of the
    fleet's instance with that network id."""
    runner = LOCAL if runner is None else runner
    admission = plan.admission
    if not admission.members:
        return ""
    host = target or (fleet.machine(admission.controller).target_host if admission.controller else None)
    if not host:
        raise FleetError(
            f"network {admission.network_id}: no controller of the fleet with a target host has it; pass --target-host"
        )
    with deploy_key_file(store) as key:
        return ssh.run_script(runner, host, script(admission, authorized=False), key).text
