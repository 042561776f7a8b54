"""A throwaway Pulumi project + git fleet repository with an admin key, for vars tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fleet_sdk import sops
from fleet_sdk.sops.tree import KeyEntry, SopsTree


def make_project(root: Path, stack_body: str) -> tuple[Path, dict[str, str]]:
    """Returns (project dir, env with SOPS_AGE_KEY of the admin `admin`). The fleet repo is the project."""
    root.mkdir(parents=True)
    (root / "stacks").mkdir()
    (root / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (root / "Pulumi.dev.yaml").write_text("config: {}\n")
    (root / "stacks" / "dev.py").write_text(textwrap.dedent(stack_body))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    private, public = sops.generate()
    SopsTree(root).write_keys("users", "admin", [KeyEntry(public)])
    env = {**os.environ, "SOPS_AGE_KEY": private}
    env.pop("SOPS_AGE_KEY_FILE", None)
    return root, env


def fleet_cli(
    project: Path, env: dict[str, str], *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "fleet_sdk", *args, "--project", str(project), "--stack", "dev"],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=project,
        check=False,
    )


def snapshot(repo: Path) -> dict[str, bytes | str]:
    """Every file (content) and link (target) under vars/ and sops/."""
    out: dict[str, bytes | str] = {}
    for top in ("vars", "sops"):
        for path in sorted((repo / top).rglob("*")):
            rel = str(path.relative_to(repo))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = path.read_bytes()
    return out
