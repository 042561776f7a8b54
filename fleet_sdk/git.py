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
    root = repo.resolve()
    specs = sorted({str(p.resolve().relative_to(root)) for p in paths})
    # on stdin, NUL-separated: hundreds of pathspecs as arguments cost git four times as much
    run(
        ["git", "-C", repo, "add", "--pathspec-from-file=-", "--pathspec-file-nul"],
        input=b"\0".join(s.encode() for s in specs),
    )
    return True
