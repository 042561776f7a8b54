"""git, for the files fleet_sdk writes into the fleet repository: flakes only see tracked files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleet_sdk.runner import run


def is_repository(repo: Path) -> bool:
    return run(["git", "-C", repo, "rev-parse", "--is-inside-work-tree"], check=False).returncode == 0


def add(repo: Path, paths: Sequence[Path]) -> bool:
    """`git add` the paths when `repo` is a git work tree (nothing to do otherwise). True if added."""
    if not paths or not is_repository(repo):
        return False
    run(["git", "-C", repo, "add", "--", *(str(p.resolve().relative_to(repo.resolve())) for p in paths)])
    return True
