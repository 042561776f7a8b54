"""Giving machines access to the shared secrets they declare (clan's generate does the same for a
machine that lacks it).

A shared generator's deploy secrets are encrypted to the enabled machines declaring it. A machine that
starts declaring one already generated (a new peer), or comes back after it was disabled (`fleet vars
fix` took it off, vars.scoping.revoke), is linked to each of its secrets and the secret re-keyed, so its
next install or deploy carries secrets it can open. `fleet vars generate` does this for the machines it
is asked for, `fleet machine install` and `fleet machine deploy` for theirs, before building anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fleet_sdk.errors import NoMatchingKeyError, SopsError
from fleet_sdk.spec import Fleet
from fleet_sdk.tools import git
from fleet_sdk.tools.runner import LOCAL, Runner
from fleet_sdk.vars.lock import repository_lock
from fleet_sdk.vars.selection import fleet_graph
from fleet_sdk.vars.store import VarsStore


def grant_shared(store: VarsStore, fleet: Fleet, machines: Iterable[str], identities: list[str]) -> list[Path]:
    """Link each enabled machine of `machines` to the stored deploy secrets of the shared generators
    it declares, making its age key first if it has none, and re-key what changed. The caller holds
    the repository lock. Returns the paths written (for `git add`)."""
    todo = lacking(store, fleet, machines)
    if not todo:
        return []
    keys = store.sops.ensure_machine_keys(sorted({m for _, ms in todo for m in ms}), identities)
    written = [p for m, (_, made) in keys.items() if made for p in _key_paths(store, m)]
    for folder, missing in todo:
        for machine in missing:
            store.sops.add_member(folder, "machines", machine)
        try:
            store.sops.rekey(folder, identities)
        except NoMatchingKeyError:
            raise SopsError(
                f"machine(s) {', '.join(missing)} declare it but cannot open it, and your age key cannot either, "
                "so it cannot be re-encrypted to them; an admin who can must run `fleet vars fix`",
                str(folder.relative_to(store.repo) / "secret"),
            ) from None
        written.append(folder)
    return written


def lacking(store: VarsStore, fleet: Fleet, machines: Iterable[str]) -> list[tuple[Path, list[str]]]:
    """(secret folder, the enabled machines of `machines` declaring it that are not linked to it)."""
    wanted = fleet.enabled & set(machines)
    todo: list[tuple[Path, list[str]]] = []
    for gid, node in fleet_graph(fleet).items():
        declaring = sorted(wanted & set(node.machines))
        if gid.machine is not None or not declaring:
            continue
        for f in node.generator.all_files:
            folder = store.file_dir(gid, f.name)
            if f.secret and f.deploy and (folder / "secret").is_file():
                missing = [m for m in declaring if not (folder / "machines" / m).is_symlink()]
                if missing:
                    todo.append((folder, missing))
    return todo


def grant_shared_locked(
    repo: Path, fleet: Fleet, machines: Iterable[str], identities: list[str], runner: Runner = LOCAL, command: str = ""
) -> list[Path]:
    """grant_shared under the repository lock, with what it wrote added to git; nothing is locked
    or written when every machine has its access (a read-only checkout deploys as before)."""
    machines = list(machines)
    if not lacking(VarsStore(repo), fleet, machines):
        return []
    with repository_lock(repo, command or "fleet (shared secrets)"):
        written = grant_shared(VarsStore(repo), fleet, machines, identities)
        git.add(runner, repo, written)
    return written


def _key_paths(store: VarsStore, machine: str) -> list[Path]:
    return [store.sops.member_dir("machines", machine), store.sops.secret_dir(f"{machine}-age.key")]
