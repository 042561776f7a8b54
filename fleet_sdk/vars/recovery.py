"""What an interrupted writer leaves in the fleet repository, found (`fleet vars check`) and repaired
(at the start of `fleet vars generate` and by `fleet vars fix`, under the repository lock).

A writer killed at any point (kill -9, power loss, a full disk) leaves at most:
- staging folders `.<gen>.new-<random>` beside generator folders and `.<file>.<random>.tmp` files of
  atomic writes: never live, so they are removed;
- generators and keys in place but not `git add`ed (a run adds what it wrote once, at its end): a
  flake sees tracked files only, so they are added;
- a secret written but not yet linked to its members (sops files are written before their links; a
  new machine key, say): with no links its readers are unknown to `fix`, which would re-key it to
  nobody, so the users and machines it is encrypted to are linked again;
- git's index.lock, when a `git add` of ours was killed with the run;
- its generators' plaintext temp folders in RAM (`execute.remove_stale_tmp`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from fleet_sdk.errors import SopsError
from fleet_sdk.sops.document import recipients
from fleet_sdk.sops.tree import KINDS, SopsTree, link_names, secret_dirs
from fleet_sdk.tools import git
from fleet_sdk.tools.runner import LOCAL, Runner
from fleet_sdk.vars.execute import remove_stale_tmp

TOPS = ("vars", "sops")
# tempfile's names: a prefix, 8 characters of [a-z0-9_], a suffix (store.stage, fsutil.write_atomic)
_LEFTOVER = re.compile(r"^\..+(\.new-[a-z0-9_]{8}(\.old)?|\.[a-z0-9_]{8}\.tmp)$")


def _swapped_out(path: Path) -> Path | None:
    """The generator folder a `.<gen>.new-<random>.old` folder was moved out of (store._swap_in's
    fallback), or None for any other leftover."""
    m = re.fullmatch(r"\.(.+)\.new-[a-z0-9_]{8}\.old", path.name)
    return path.with_name(m.group(1)) if m and path.is_dir() and not path.is_symlink() else None


def leftovers(repo: Path) -> list[Path]:
    """Staging folders and temp files of interrupted writes under vars/ and sops/."""
    found = []
    for top in TOPS:
        for dirpath, dirs, files in os.walk(repo / top):
            for name in [*dirs, *files]:
                if _LEFTOVER.match(name):
                    found.append(Path(dirpath) / name)
            dirs[:] = [d for d in dirs if not _LEFTOVER.match(d)]
    return sorted(found)


def untracked(repo: Path, runner: Runner | None = None) -> list[Path]:
    """Files and links under vars/ and sops/ that git does not track (leftovers aside)."""
    runner = LOCAL if runner is None else runner
    junk = {p.relative_to(repo).parts for p in leftovers(repo)}
    out = []
    for path in git.untracked(runner, repo, TOPS):
        parts = path.relative_to(repo).parts
        if not any(parts[: len(j)] == j for j in junk):
            out.append(path)
    return out


def unit(repo: Path, path: Path) -> Path:
    """The folder a file belongs to, relative to the repository: its generator's
    (vars/per-machine/<m>/<gen>, vars/shared/<gen>) or its sops entry's (sops/<kind>/<name>)."""
    parts = path.relative_to(repo).parts
    if parts[:2] == ("vars", "per-machine"):
        depth = 4
    elif parts[:2] == ("vars", "shared") or parts[:1] == ("sops",):
        depth = 3
    else:
        depth = len(parts)
    return Path(*parts[:depth])


def units(repo: Path, paths: Iterable[Path]) -> dict[Path, int]:
    """Each unit (see `unit`) with its number of files among `paths`, sorted."""
    counts: dict[Path, int] = {}
    for path in paths:
        key = unit(repo, path)
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def unlinked_secrets(tree: SopsTree) -> list[Path]:
    """Secret folders without a single member link (in leftovers aside: they go as a whole)."""
    return [
        d
        for d in secret_dirs(tree.repo)
        if not any(link_names(d / kind) for kind in KINDS)
        and not any(_LEFTOVER.match(part) for part in d.relative_to(tree.repo).parts)
    ]


def relink(tree: SopsTree, secret_dir: Path) -> list[str]:
    """Link the users and machines whose keys the secret is encrypted to; their names."""
    have = set(recipients((secret_dir / "secret").read_bytes(), str(secret_dir / "secret")))
    linked = []
    for kind in ("users", "machines"):
        for name in tree.names(kind):
            if have & set(tree.keys_of(kind, name)):
                tree.add_member(secret_dir, kind, name)
                linked.append(f"{kind}/{name}")
    return linked


def recover(repo: Path, runner: Runner | None = None) -> tuple[list[Path], list[Path]]:
    """Remove leftovers, a stale index.lock and stale RAM temp folders, relink unlinked secrets,
    `git add` untracked vars and keys; returns (removed, added). Call it holding the repository
    lock: a live writer's staging folders, temp files and new secrets look exactly like these."""
    runner = LOCAL if runner is None else runner
    removed = []
    for path in leftovers(repo):
        final = _swapped_out(path)
        if final is not None and not os.path.lexists(final):
            # the store's rename fallback was killed between its renames: this is the live generator
            os.rename(path, final)
            continue
        removed.append(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    index_lock = git.stale_index_lock(runner, repo, settle=0.5)
    if index_lock is not None:
        index_lock.unlink(missing_ok=True)
        removed.append(index_lock)
    remove_stale_tmp()
    tree = SopsTree(repo)
    for secret_dir in unlinked_secrets(tree):
        with contextlib.suppress(SopsError):  # a damaged document is reported where it is read
            relink(tree, secret_dir)
    added = untracked(repo, runner)
    git.add(runner, repo, added)
    return removed, added
