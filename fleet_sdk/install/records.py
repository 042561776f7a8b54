"""What an install writes into the fleet repository (each file atomically, then `git add`, because a
flake evaluates only tracked files):

- machines/<m>/disko.json: the disk layout, before nixos-anywhere evaluates the flake (clan's layout);
- machines/<m>/facter.json: the hardware report of nixos-facter, run in the installer;
- machines/<m>/install.json: the layout digest and host key the machine was installed with, which
  `fleet plan` compares with the stack to say a changed layout needs a reinstall;
- known_hosts: one line per installed machine (comment `fleet:<m>`), for the user's ssh and scripts;
  dropped when the machine leaves the fleet or is disabled (`forget`, the install step's delete).
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
from fleet_sdk.vars.lock import repository_lock

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


def _known_host_lines(repo: Path) -> list[str]:
    try:
        return (repo / KNOWN_HOSTS).read_text().splitlines()
    except FileNotFoundError:
        return []


def known_host_machines(repo: Path) -> list[str]:
    """The machines known_hosts has a line for (`fleet:<m>`), in file order."""
    return [line.split()[-1].removeprefix("fleet:") for line in _known_host_lines(repo) if _tag(line)]


def _tag(line: str) -> str | None:
    last = line.split()[-1:]
    return last[0] if last and last[0].startswith("fleet:") else None


def drop_known_hosts(repo: Path, machines: set[str]) -> Path | None:
    """known_hosts without the lines of `machines`; None (nothing written) when it has none of them."""
    lines = _known_host_lines(repo)
    kept = [line for line in lines if (_tag(line) or "").removeprefix("fleet:") not in machines]
    if kept == lines:
        return None
    return _write(repo, repo / KNOWN_HOSTS, "".join(f"{line}\n" for line in kept).encode())


def forget(runner: Runner, repo: Path, machine: str) -> bool:
    """Drop the machine's known_hosts line, under the repository lock, and `git add` it; whether
    there was one."""
    with repository_lock(repo, "fleet machine forget"):
        written = drop_known_hosts(repo, {machine})
        if written is not None:
            track(runner, repo, [written])
    return written is not None


def write_known_host(repo: Path, machine: str, target: TargetHost, key: str) -> Path:
    """known_hosts with the machine's line replaced (or added): `host type key fleet:<m>`."""
    path = repo / KNOWN_HOSTS
    lines = _known_host_lines(repo)
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
