"""What an install writes into the fleet repository (each file atomically, then `git add`, because a
flake evaluates only tracked files):

- machines/<m>/disko.json: the disk layout, before nixos-anywhere evaluates the flake (clan's layout);
- machines/<m>/facter.json: the hardware report of nixos-facter, run in the installer;
- machines/<m>/install.json: the layout digest and host key the machine was installed with, which
  `fleet plan` compares with the stack to say a changed layout needs a reinstall;
- known_hosts: one line per installed machine (comment `fleet:<m>`), for the user's ssh and scripts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fleet_sdk.errors import InstallError
from fleet_sdk.fs.atomic import write_atomic
from fleet_sdk.targets import TargetHost
from fleet_sdk.tools import git
from fleet_sdk.tools.runner import Runner

KNOWN_HOSTS = "known_hosts"


def layout_digest(layout: str | None) -> str | None:
    """The digest of a rendered disko.json, as the install marker and install.json carry it."""
    return None if layout is None else "sha256:" + hashlib.sha256(layout.encode()).hexdigest()


def machine_dir(repo: Path, machine: str) -> Path:
    return repo / "machines" / machine


def _write(repo: Path, path: Path, data: bytes) -> Path:
    write_atomic(path, data, mode=0o644, dir_mode=0o755)
    return path


def write_layout(repo: Path, machine: str, layout: str) -> Path:
    return _write(repo, machine_dir(repo, machine) / "disko.json", layout.encode())


def write_facter(repo: Path, machine: str, report: bytes) -> Path:
    try:
        json.loads(report)
    except ValueError:
        raise InstallError(
            machine, "nixos-facter printed no JSON hardware report; run it in the installer to see why"
        ) from None
    return _write(repo, machine_dir(repo, machine) / "facter.json", report)


def installed(repo: Path, machine: str) -> dict[str, Any] | None:
    """machines/<m>/install.json, or None when the machine was never installed by fleet_sdk."""
    try:
        doc = json.loads((machine_dir(repo, machine) / "install.json").read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_installed(repo: Path, machine: str, layout: str | None, host_key_fingerprint: str) -> Path:
    doc = {"layout": layout, "host_key": host_key_fingerprint}
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    return _write(repo, machine_dir(repo, machine) / "install.json", text.encode())


def write_known_host(repo: Path, machine: str, target: TargetHost, key: str) -> Path:
    """known_hosts with the machine's line replaced (or added): `host type key fleet:<m>`."""
    path = repo / KNOWN_HOSTS
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    tag = f"fleet:{machine}"
    host = f"[{target.host}]:{target.port}" if target.port else target.host
    kept = [line for line in lines if line.split()[-1:] != [tag]]
    kept.append(f"{host} {key} {tag}")
    return _write(repo, path, ("\n".join(kept) + "\n").encode())


def track(runner: Runner, repo: Path, paths: list[Path]) -> None:
    """`git add` the files (nothing when the repository is not a git work tree)."""
    git.add(runner, repo, paths)


def install_state(repo: Path, machine: str, layout: str | None) -> dict[str, Any]:
    """For `fleet plan`: the digest of the stack's layout, the one the machine was installed with
    (None when fleet_sdk did not install it) and whether a reinstall, which wipes it, is needed."""
    record = installed(repo, machine) or {}
    digest, was = layout_digest(layout), record.get("layout")
    return {"layout": digest, "installed_layout": was, "reinstall_required": bool(was and digest and was != digest)}
