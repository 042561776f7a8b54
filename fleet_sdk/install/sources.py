"""Where an install's inputs come from in the fleet repository: the machine's ssh host key pair and
age key, its activation secrets (the selection a deploy uploads, fleet_sdk.deploy.stored), its
neededFor=partitioning vars as disk-encryption keys, the fleet's deploy key, and its disk layout.
Secrets are decrypted with the operator's age identities into memory only."""

from __future__ import annotations

from pathlib import Path

from fleet_sdk.deploy.sources import HOST_KEY, host_key, machine_secrets
from fleet_sdk.errors import InstallError
from fleet_sdk.install.model import InstallRequest
from fleet_sdk.spec import Fleet, Machine
from fleet_sdk.tools.nixos_anywhere import PHASES
from fleet_sdk.vars.store import GeneratorId, VarsStore, generator_id

PARTITIONING_SECRETS = "/run/partitioning-secrets"  # clan's place in the installer (reference/deploy.md §2)
DEPLOY_KEY = GeneratorId("deploy-key", None)


def install_request(
    fleet: Fleet,
    repo: Path,
    name: str,
    *,
    target: str,
    flake: str,
    identities: list[str],
    identity_file: Path | None = None,
    phases: tuple[str, ...] = PHASES,
) -> InstallRequest:
    machine = fleet.machine(name)
    if machine.machine_class == "darwin":
        raise InstallError(
            name, "is a darwin machine: nix-darwin is installed by hand, not by nixos-anywhere; "
            "deploy it with `fleet machine deploy`",
        )  # fmt: skip
    public = host_key(repo, name)
    if public is None:
        raise InstallError(
            name,
            f"its ssh host key (vars {HOST_KEY[0]}/{HOST_KEY[1]}) is not generated: run `fleet vars generate {name}`",
        )
    store = VarsStore(repo)
    private = store.secret(GeneratorId(HOST_KEY[0], name), HOST_KEY[1].removesuffix(".pub"), identities)
    identity = None
    if identity_file is None and store.public(DEPLOY_KEY, "id_ed25519.pub") is not None:
        identity = store.secret(DEPLOY_KEY, "id_ed25519", identities)
    return InstallRequest(
        machine=name,
        target=target,
        flake=flake,
        repo=repo,
        host_key=public,
        host_key_pair=(private, (public + "\n").encode()),
        layout=machine.disks.render() if machine.disks is not None else None,
        secrets=machine_secrets(repo, fleet, name, identities),
        disk_keys=disk_keys(fleet, machine, store, identities),
        identity=identity,
        identity_file=identity_file,
        phases=phases,
        reinstall=machine.reinstall,
    )


def disk_keys(fleet: Fleet, machine: Machine, store: VarsStore, identities: list[str]) -> dict[str, bytes]:
    """/run/partitioning-secrets/<generator>/<file> -> the bytes of each neededFor=partitioning secret."""
    keys = {}
    for g in fleet.generators_of(machine):
        gid = generator_id(g, machine.name)
        for f in g.all_files:
            if not (f.secret and f.needed_for == "partitioning"):
                continue
            if not store.exists(gid, f):
                raise InstallError(
                    machine.name,
                    f"its disk key {g.name}/{f.name} is not generated: run `fleet vars generate {machine.name}`",
                )
            keys[f"{PARTITIONING_SECRETS}/{g.name}/{f.name}"] = store.secret(gid, f.name, identities)
    return keys
