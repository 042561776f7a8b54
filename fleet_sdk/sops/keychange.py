"""Machine keys that changed under their secrets.

A machine's age public key lives in sops/machines/<m>/key.json, and re-keying encrypts every secret
linked to the machine to whatever that file says. A key.json swapped for another key (by mistake, a
bad merge, or an attacker with write access to the repository) would silently hand the machine's
secrets to the new key's holder. The secrets themselves remember the old key: a secret linked to the
machine that is encrypted to none of its current keys, but to a key no member of the secret has, is
the mark of a changed key. Such a change is shown and needs an explicit confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.errors import MachineKeyChangedError
from fleet_sdk.sops.document import recipients
from fleet_sdk.sops.tree import SopsTree, secret_dirs


@dataclass(frozen=True)
class KeyChange:
    machine: str
    old: tuple[str, ...]  # keys the machine's secrets are encrypted to that no member has now
    new: tuple[str, ...]  # the keys key.json holds now
    secrets: tuple[Path, ...]  # secret folders (relative to the repository) that show it

    @property
    def key_file(self) -> str:
        return f"sops/machines/{self.machine}/key.json"

    def evidence(self) -> str:
        return (
            f"holds {', '.join(self.new)}, but {len(self.secrets)} of its secrets (e.g. {self.secrets[0]}) are "
            f"encrypted to {', '.join(self.old)}"
        )

    def describe(self) -> str:
        return f"machine {self.machine}: {self.key_file} {self.evidence()}"


def changes(tree: SopsTree) -> list[KeyChange]:
    """Every machine whose linked secrets show a key other than the one its key.json holds."""
    found: dict[str, tuple[set[str], set[Path]]] = {}
    machines = set(tree.names("machines"))
    for folder in secret_dirs(tree.repo):
        linked = tree.machines_linked(folder) & machines
        if not linked:
            continue
        current = set(recipients((folder / "secret").read_text(), str(folder / "secret")))
        orphans = current - tree.recipients_of(folder)
        if not orphans:
            continue  # every old recipient is still a member: a new link, not a new key
        for machine in sorted(linked):
            if not set(tree.keys_of("machines", machine)) & current:
                old, where = found.setdefault(machine, (set(), set()))
                old |= orphans
                where.add(folder.relative_to(tree.repo))
    return [
        KeyChange(m, tuple(sorted(old)), tuple(tree.keys_of("machines", m)), tuple(sorted(where)))
        for m, (old, where) in sorted(found.items())
    ]


def refuse_unconfirmed(tree: SopsTree, accept: bool) -> list[KeyChange]:
    """The changes, when `accept`; else MachineKeyChangedError naming them, before anything is
    re-encrypted."""
    found = changes(tree)
    if found and not accept:
        lines = [c.describe() for c in found]
        raise MachineKeyChangedError(
            "\n".join(lines) + "\nre-encrypting would give these secrets to the new key's holder. If you replaced "
            "the key on purpose, run `fleet vars fix --accept-key-change`; otherwise restore key.json "
            "(e.g. `git checkout -- sops/machines/<m>/key.json`)"
        )
    return found
