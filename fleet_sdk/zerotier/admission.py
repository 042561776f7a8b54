"""Admitting members on a ZeroTier controller: POST {"authorized": true} to its local API
(/controller/network/<nwid>/member/<id>, reference/clan.md §5.4), over SSH, with the controller's
authtoken read on the controller itself."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.errors import FleetError
from fleet_sdk.fs import atomic as fsutil
from fleet_sdk.fs.private import private_dir
from fleet_sdk.sops import operator_identities
from fleet_sdk.spec import Fleet
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
    wanted = members or sorted(known)
    missing = [m for m in wanted if m not in known]
    if missing:
        raise FleetError(
            f"instance {instance!r}: no member id for {', '.join(missing)}; run `fleet vars generate` or "
            "list external members in roles.controller.settings.allowedIps or allowedIds"
        )
    return Admission(instance, controller, nwid.decode(), {m: known[m] for m in wanted})


def script(admission: Admission) -> str:
    """The shell script run on the controller: one authorised POST per member."""
    lines = [
        "set -eu",
        f"token=$(cat {AUTHTOKEN})",
    ]
    for name, mid in sorted(admission.members.items()):
        url = f"http://localhost:9993/controller/network/{admission.network_id}/member/{mid}"
        lines.append(
            f'curl -fsS -X POST -H "X-ZT1-AUTH: $token" -d \'{{"authorized": true}}\' {shlex.quote(url)} >/dev/null'
            f" && echo {shlex.quote(f'admitted {name} ({mid})')}"
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
