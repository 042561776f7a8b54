"""Where a deploy's inputs come from in the fleet repository, for the CLI: the system closure (from
the flake), the machine's ssh host key (its vars) and the secrets sops-nix needs before activation
(clan's upload tree, reference/clan.md §3.5).

`requests_for` asks the closure probe (fleet_sdk.deploy.probe) once for every machine of the run;
`system_closure` then needs no evaluation for a machine the probe knows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from fleet_sdk.deploy.model import DeployRequest, MachineClass, SecretFile
from fleet_sdk.deploy.probe import Closure, Probed, probe_closures
from fleet_sdk.deploy.settings import BuildOn
from fleet_sdk.deploy.stored import uploaded_documents
from fleet_sdk.errors import CommandError, DeployError
from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.spec import Fleet
from fleet_sdk.tools.runner import Runner
from fleet_sdk.vars.store import GeneratorId, VarsStore

NIX_FLAGS = ("--extra-experimental-features", "nix-command flakes")
HOST_KEY = ("openssh", "ssh.id_ed25519.pub")  # vars/stock.py: the sshd host key generator and its public file
BUILD_TIMEOUT = 7200.0


def toplevel_attr(flake: str, machine: str, machine_class: MachineClass) -> str:
    if machine_class == "darwin":
        return f'{flake}#darwinConfigurations."{machine}".system'
    return f'{flake}#nixosConfigurations."{machine}".config.system.build.toplevel'


def system_closure(
    runner: Runner,
    flake: str,
    machine: str,
    machine_class: MachineClass,
    build_on: BuildOn = "local",
    probed: Probed | None = None,
) -> tuple[str, str | None]:
    """(store path, derivation) of the machine's system. Built here (`nix build --json`, which also
    works on Nix 2.8 without --print-out-paths) unless it is to be built on the target; then only
    evaluated, which writes the derivation to copy there. A closure the probe found (`probed`) is
    not evaluated again while its derivation is in this machine's store (`nix-store --realise` builds
    it here, if it is to be); else, or when its derivation is gone (collected), as without it."""
    if isinstance(probed, Closure) and Path(probed.drv_path).exists():
        if build_on == "remote":
            return probed.out_path, probed.drv_path
        try:
            done = runner.run(["nix-store", "--realise", probed.drv_path], timeout=BUILD_TIMEOUT)
        except CommandError as e:
            raise DeployError(machine, f"building its system ({probed.drv_path}) failed: {e}") from None
        if probed.out_path in done.stdout.decode().split():
            return probed.out_path, probed.drv_path
    attr = toplevel_attr(flake, machine, machine_class)
    try:
        if build_on == "remote":
            apply = "t: { drv = t.drvPath; out = t.outPath; }"
            done = runner.run(["nix", *NIX_FLAGS, "eval", "--json", attr, "--apply", apply], timeout=BUILD_TIMEOUT)
            found = json.loads(done.stdout)
            return str(found["out"]), str(found["drv"])
        done = runner.run(["nix", *NIX_FLAGS, "build", "--no-link", "--json", attr], timeout=BUILD_TIMEOUT)
        built = json.loads(done.stdout)[0]
        return str(built["outputs"]["out"]), str(built["drvPath"])
    except CommandError as e:
        raise DeployError(machine, f"building its system ({attr}) failed: {e}") from None
    except (ValueError, KeyError, IndexError, TypeError):
        raise DeployError(machine, f"nix printed no store path for {attr}") from None


def host_key(repo: Path, machine: str) -> str | None:
    """The machine's public ssh host key line from its vars, or None when not generated."""
    value = VarsStore(repo).public(GeneratorId(HOST_KEY[0], machine), HOST_KEY[1])
    return value.decode().strip() if value else None


def machine_secrets(
    repo: Path, fleet: Fleet, machine: str, identities: list[str], root: str = "/var/lib/sops-nix"
) -> dict[str, SecretFile]:
    """clan's upload tree: key.txt (the machine's age key, when sops/secrets/<m>-age.key exists) and
    every deployed neededFor=activation secret at activation/<rel_dir>/<file>, decrypted with the
    operator's `identities` (in memory only). The selection is `stored.uploaded_documents`, the one
    the graph's secrets trigger hashes, so what is uploaded and what re-runs a deploy cannot differ."""
    tree = SopsTree(repo)
    return {
        f"{root}/{path}": SecretFile(tree.read_secret(s.document.parent, identities), s.owner, s.group, s.mode)
        for path, s in uploaded_documents(repo, fleet, fleet.machine(machine)).items()
    }


def probe_wanted(fleet: Fleet, machines: list[str], systems: Mapping[str, str]) -> dict[str, MachineClass]:
    """The machines (name -> class) whose system comes from the flake: those not given in `systems`."""
    return {n: fleet.machine(n).machine_class for n in machines if n not in systems}


def requests_for(
    fleet: Fleet,
    repo: Path,
    machines: list[str],
    *,
    runner: Runner,
    flake: str,
    systems: dict[str, str],
    target_host: str | None = None,
    known_hosts: Path | None = None,
    identity_file: Path | None = None,
    build_on: BuildOn = "local",
    identities: list[str] | None = None,
    closure_probe: bool = True,
    probed: Mapping[str, Probed] | None = None,
) -> list[DeployRequest]:
    """One request per machine: its target (or `target_host`), its system (given in `systems`, else
    built from `flake`), its host key from the vars unless `known_hosts` is given, and its secrets
    when `identities` (the operator's age keys) are given. The systems to build are known from one
    closure probe of them all (`probed`, else one run here, unless `closure_probe` is False)."""
    if probed is None:
        probed = probe_closures(runner, flake, probe_wanted(fleet, machines, systems)) if closure_probe else {}
    requests = []
    for name in machines:
        m = fleet.machine(name)
        target = target_host or m.target_host
        if not target:
            raise DeployError(name, "has no target_host: set it in the fleet, or pass --target-host")
        drv = None
        if name in systems:
            system = systems[name]
        else:
            system, drv = system_closure(runner, flake, name, m.machine_class, build_on, probed.get(name))
        key = None if known_hosts else host_key(repo, name)
        if known_hosts is None and key is None:
            raise DeployError(
                name, "its ssh host key (vars openssh/ssh.id_ed25519.pub) is not generated: run "
                "`fleet vars generate`, or pass --known-hosts FILE",
            )  # fmt: skip
        files = machine_secrets(repo, fleet, name, identities) if identities is not None else {}
        requests.append(
            DeployRequest(name, target, system, m.machine_class, key, known_hosts, identity_file, files, drv)
        )
    return requests
