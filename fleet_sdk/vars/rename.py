"""`fleet machine rename OLD NEW`: a machine's vars, keys and records moved to its new name in clan's
layout, so the renamed machine keeps its identity (host key, ZeroTier address, age key).

Moved, under the repository lock, then tracked (`git add` of the new paths, the old ones dropped):
- vars/per-machine/OLD -> NEW, and the shared ZeroTier identity zerotier-identity-OLD -> -NEW;
- sops/machines/OLD -> NEW (its public age key) and sops/secrets/OLD-age.key -> NEW-age.key (the
  private one, encrypted to the admins: the key itself is unchanged, so every secret still decrypts);
- every member link `machines/OLD` of a var, a clan secret or a group -> `machines/NEW`, relative
  as clan writes it;
- machines/OLD -> NEW (disko.json, facter.json, install.json) and the known_hosts line `fleet:OLD`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fleet_sdk.errors import ConfigError
from fleet_sdk.fs.atomic import write_atomic
from fleet_sdk.install.records import KNOWN_HOSTS
from fleet_sdk.spec.names import hostname_problem
from fleet_sdk.tools import git
from fleet_sdk.tools.runner import Runner
from fleet_sdk.vars.lock import repository_lock

ZEROTIER_IDENTITY = "zerotier-identity-"  # fleet_sdk.zerotier.service.IDENTITY_PREFIX


@dataclass
class Renamed:
    """What a rename moved: (old, new) paths relative to the repository, links retargeted."""

    old: str
    new: str
    moved: list[tuple[str, str]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    known_hosts: bool = False

    def stack_change(self) -> str:
        return f'Machine(name="{self.new}", renamed_from=("{self.old}",), ...)'


def _check(repo: Path, old: str, new: str) -> None:
    for name in (old, new):
        if p := hostname_problem(name):
            raise ConfigError(f"machine {name}: {p}")
    if old == new:
        raise ConfigError(f"machine {old}: the new name is the old one")
    if not any(p.exists() for p in _owned(repo, old)):
        raise ConfigError(
            f"machine {old}: has no vars, key or records in {repo} to move to {new}; "
            "rename the machine in the stack alone"
        )
    if taken := [str(p.relative_to(repo)) for p in _owned(repo, new) if p.exists() or p.is_symlink()]:
        raise ConfigError(
            f"machine {new}: already has {', '.join(taken)} in {repo}; "
            f"machine {old} cannot be renamed to it (remove them first, or choose another name)"
        )


def _owned(repo: Path, m: str) -> list[Path]:
    """The folders that belong to machine `m` alone."""
    return [
        repo / "vars" / "per-machine" / m,
        repo / "vars" / "shared" / f"{ZEROTIER_IDENTITY}{m}",
        repo / "sops" / "machines" / m,
        repo / "sops" / "secrets" / f"{m}-age.key",
        repo / "machines" / m,
    ]


def _member_links(repo: Path, old: str) -> list[Path]:
    """Every `machines/OLD` member link of a var, a clan secret or a group."""
    found: list[Path] = []
    for top in (repo / "vars", repo / "sops" / "secrets", repo / "sops" / "groups"):
        if not top.is_dir():
            continue
        for dirpath, dirs, _ in os.walk(top):
            if os.path.basename(dirpath) == "machines":
                link = Path(dirpath) / old
                if link.is_symlink():
                    found.append(link)
                dirs.clear()
    return found


def _relink(repo: Path, link: Path, new: str) -> Path:
    """`machines/OLD` replaced by `machines/NEW`, pointing (relative) at sops/machines/NEW."""
    target = os.path.relpath(repo / "sops" / "machines" / new, link.parent)
    fresh = link.parent / new
    os.symlink(target, fresh)
    link.unlink()
    return fresh


def _known_hosts(repo: Path, old: str, new: str) -> bool:
    """The known_hosts line tagged `fleet:OLD` tagged `fleet:NEW`; False when there is none."""
    path = repo / KNOWN_HOSTS
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return False
    tag = f"fleet:{old}"
    kept = [line.removesuffix(tag) + f"fleet:{new}" if line.split()[-1:] == [tag] else line for line in lines]
    if kept == lines:
        return False
    write_atomic(path, ("\n".join(kept) + "\n").encode(), mode=0o644, dir_mode=0o755)
    return True


def rename_machine(runner: Runner, repo: Path, old: str, new: str) -> Renamed:
    """Move machine `old`'s vars, keys, member links and records to `new`; ConfigError naming both
    when `new` already has some or `old` has none."""
    with repository_lock(repo, "fleet machine rename"):
        _check(repo, old, new)
        done = Renamed(old, new)
        touched: list[Path] = []
        links = _member_links(repo, old)  # found before the folders move: those inside move with them
        for src, dst in zip(_owned(repo, old), _owned(repo, new), strict=True):
            if src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                src.rename(dst)
                done.moved.append((str(src.relative_to(repo)), str(dst.relative_to(repo))))
                touched += [src, dst]
        owned_old = [str(p) for p in _owned(repo, old)]
        owned_new = dict(zip(owned_old, _owned(repo, new), strict=True))
        for link in links:
            for prefix, moved_to in owned_new.items():  # a link inside a folder that moved
                if str(link).startswith(prefix + os.sep):
                    link = moved_to / link.relative_to(prefix)
            fresh = _relink(repo, link, new)
            done.links.append(str(fresh.relative_to(repo)))
            touched += [link, fresh]
        if _known_hosts(repo, old, new):
            done.known_hosts = True
            touched.append(repo / KNOWN_HOSTS)
        git.add(runner, repo, touched)
    return done
