"""Secrets that belong to one machine, and links that let another machine read them.

A machine's own identity is whatever lets something else pose as it: its ZeroTier identity
(`vars/shared/zerotier-identity-<m>`), its age key (`sops/secrets/<m>-age.key`, for admins only)
and every per-machine var (`vars/per-machine/<m>/…`: ssh host keys, initrd keys, service secrets).
Linking such a secret to another machine, directly or through a group, encrypts it to that
machine: it can decrypt the key and impersonate the owner. clan never does this; an older
fleet_sdk did for the controller's ZeroTier identity, so `check` reports it and `fix` repairs it.

`fix` only stops future readers; the machine that could read the secret may have copied it, so
the secret should be rotated, and the message says so.

Likewise a shared secret is encrypted only to the enabled machines declaring its generator: one
that left the fleet, was disabled or no longer declares it is unlinked (`revoke`) and the secret
should be rotated. Its own secrets stay encrypted to it, so it can come back with its identity.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.sops.tree import SopsTree, link_names, secret_dirs
from fleet_sdk.zerotier.service import IDENTITY_PREFIX

AGE_KEY_SUFFIX = "-age.key"


@dataclass(frozen=True)
class ForeignLink:
    """`machine` can read `owner`'s own secret `secret` (a folder, relative to the repository),
    through the link `link` (`machines/<machine>` or `groups/<group>`)."""

    secret: Path
    owner: str
    machine: str
    link: str

    def describe(self) -> str:
        via = "" if self.link.startswith("machines/") else f" through {self.link}"
        return f"{self.owner}'s own secret is encrypted to machine {self.machine}{via}"


def owner_of(secret: Path) -> str | None:
    """The machine whose own identity the secret folder (relative to the repository) holds."""
    parts = secret.parts
    if len(parts) >= 4 and parts[:2] == ("vars", "per-machine"):
        return parts[2]
    if len(parts) >= 4 and parts[:2] == ("vars", "shared") and parts[2].startswith(IDENTITY_PREFIX):
        return parts[2].removeprefix(IDENTITY_PREFIX) or None
    if len(parts) == 3 and parts[:2] == ("sops", "secrets") and parts[2].endswith(AGE_KEY_SUFFIX):
        return parts[2].removesuffix(AGE_KEY_SUFFIX) or None
    return None


def foreign_links(tree: SopsTree) -> Iterator[ForeignLink]:
    """Every machine, other than its owner, that a machine's own secret is encrypted to."""
    for folder in secret_dirs(tree.repo):
        rel = folder.relative_to(tree.repo)
        owner = owner_of(rel)
        if owner is None:
            continue
        for machine in sorted(link_names(folder / "machines")):
            if machine != owner:
                yield ForeignLink(rel, owner, machine, f"machines/{machine}")
        for group in sorted(link_names(folder / "groups")):
            for machine in tree.group_members(group)["machines"]:
                if machine != owner:
                    yield ForeignLink(rel, owner, machine, f"groups/{group}")


def unlink(tree: SopsTree, found: ForeignLink) -> list[str]:
    """Remove the link that lets `found.machine` read the secret; what was changed, as sentences.

    A group link is replaced by direct links to the group's users and to the owner if it was a
    member, so nobody else loses access. Re-keying is the caller's (one pass for all secrets)."""
    folder = tree.repo / found.secret
    link = folder / found.link
    if not link.is_symlink():
        return []  # already removed (a group reported once per foreign member)
    changes = [f"unlinked {found.link} from {found.secret}"]
    if found.link.startswith("groups/"):
        members = tree.group_members(found.link.removeprefix("groups/"))
        for user in members["users"]:
            tree.add_member(folder, "users", user)
            changes.append(f"linked users/{user} to {found.secret} (was a member of {found.link})")
        if found.owner in members["machines"]:
            tree.add_member(folder, "machines", found.owner)
            changes.append(f"linked machines/{found.owner} to {found.secret} (was a member of {found.link})")
    os.unlink(link)
    with contextlib.suppress(OSError):  # an empty kind folder goes too, as clan leaves none
        link.parent.rmdir()
    return changes


@dataclass(frozen=True)
class Revoked:
    """`machine`, no longer an enabled machine declaring `generator`, was unlinked from its shared
    secret `secret` (a folder relative to the repository)."""

    machine: str
    generator: str
    secret: Path

    def describe(self) -> str:
        return (
            f"unlinked machines/{self.machine} from {self.secret} (not an enabled machine declaring {self.generator})"
        )


def departed(tree: SopsTree, folder: Path, members: set[str]) -> list[str]:
    """Machines linked to a shared secret's folder that are neither `members` nor its owner."""
    owner = owner_of(folder.relative_to(tree.repo))
    return [m for m in sorted(link_names(folder / "machines")) if m not in members and m != owner]


def revoke(tree: SopsTree, folder: Path, generator: str, members: set[str]) -> list[Revoked]:
    """Unlink from a shared secret's folder every machine that is neither one of `members` nor the
    secret's owner (a shared generator holding one machine's identity). Re-keying is the caller's."""
    rel = folder.relative_to(tree.repo)
    links = folder / "machines"
    done = []
    for machine in departed(tree, folder, members):
        os.unlink(links / machine)
        done.append(Revoked(machine, generator, rel))
    if done:
        with contextlib.suppress(OSError):  # an empty kind folder goes too, as clan leaves none
            links.rmdir()
    return done
