"""nixos-anywhere, for installing NixOS on a machine over SSH (reference/deploy.md §1): kexec into an
installer, partition with disko, copy the system and `--extra-files`, reboot. `--phases` runs only
some of these, so an install can be resumed phase by phase (clan runs one phase per invocation).

Secrets never appear in argv: `--disk-encryption-keys` names a local file whose contents go to a path
in the installer, and `--extra-files` a local folder copied to the new system's root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.errors import FleetError
from fleet_sdk.tools import ssh
from fleet_sdk.tools.runner import CmdResult, Runner

NIXOS_ANYWHERE = "nixos-anywhere"
PHASES = ("kexec", "disko", "install", "reboot")  # in the order nixos-anywhere runs them
INSTALL_TIMEOUT = 3600.0  # kexec, partitioning and a whole system closure


@dataclass(frozen=True)
class DiskKey:
    """A file copied into the installer before disko runs (e.g. a LUKS or ZFS passphrase)."""

    remote: str  # absolute path in the installer, as the disko config names it
    local: Path


@dataclass(frozen=True)
class Install:
    flake: str  # a flake reference without "#", e.g. "." or "/path/to/fleet"
    machine: str  # its nixosConfigurations attribute
    target: str  # [user@]host[:port]
    identity_file: Path | None = None
    extra_files: Path | None = None  # a folder whose contents land in the new system's /
    disk_keys: tuple[DiskKey, ...] = ()
    phases: tuple[str, ...] = ()  # empty: nixos-anywhere's default, all of PHASES
    ssh_options: tuple[str, ...] = ()  # each as `ssh -o` takes it, e.g. "UserKnownHostsFile=…"
    build_on_remote: bool = False
    substitute_on_destination: bool = True  # nixos-anywhere's default; False when the target has no cache


def argv(request: Install) -> list[str]:
    _check(request)
    t = ssh.parse_target(request.target)
    args = [NIXOS_ANYWHERE, "--flake", f"{request.flake}#{request.machine}", "--target-host", f"{t.user}@{t.host}"]
    if t.port:
        args += ["--ssh-port", str(t.port)]
    if request.identity_file:
        args += ["-i", str(request.identity_file)]
    for option in request.ssh_options:
        args += ["--ssh-option", option]
    if request.extra_files:
        args += ["--extra-files", str(request.extra_files)]
    for key in request.disk_keys:
        args += ["--disk-encryption-keys", key.remote, str(key.local)]
    if request.phases:
        args += ["--phases", ",".join(request.phases)]
    if request.build_on_remote:
        args.append("--build-on-remote")
    if not request.substitute_on_destination:
        args.append("--no-substitute-on-destination")
    return args


def install(runner: Runner, request: Install, *, timeout: float = INSTALL_TIMEOUT) -> CmdResult:
    """Run nixos-anywhere; a failure raises CommandError with the tail of its output."""
    return runner.run(
        argv(request),
        timeout=timeout,
        hint=f"installing {request.machine} on {request.target} failed; the output above names the phase",
    )


def _check(request: Install) -> None:
    where = f"nixos-anywhere for {request.machine!r}"
    if not request.flake or "#" in request.flake:
        raise FleetError(f"{where}: flake {request.flake!r} must be a flake reference without '#'")
    if not request.machine or "#" in request.machine:
        raise FleetError(f"{where}: the machine must be a nixosConfigurations name")
    if unknown := [p for p in request.phases if p not in PHASES]:
        raise FleetError(f"{where}: unknown phases {unknown}; use some of {', '.join(PHASES)}")
    if len(set(request.phases)) != len(request.phases):
        raise FleetError(f"{where}: phases {list(request.phases)} name one twice")
    if relative := [k.remote for k in request.disk_keys if not k.remote.startswith("/")]:
        raise FleetError(f"{where}: disk key paths {relative} in the installer must be absolute")
