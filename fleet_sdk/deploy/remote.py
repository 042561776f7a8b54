"""Commands on the target over ssh, every one on a fresh connection that checks the host key strictly
against the known_hosts file the engine writes from the machine's public host key (never
trust-on-first-use). No multiplexing: a confirmation over a shared master connection survives an sshd
restart and proves nothing (reference/deploy.md §8), so every command proves the machine answers.

The remote argv is quoted argument by argument (ssh joins its arguments with spaces for the remote
shell); values reach scripts as positional arguments (fleet_sdk.deploy.scripts). A user other than
root runs what needs root through `sudo -n`, which fails at once instead of asking for a password.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.deploy.model import DeployRequest
from fleet_sdk.deploy.settings import DeploySettings
from fleet_sdk.errors import CommandError, DeployError, SudoPasswordError, TargetUnreachableError
from fleet_sdk.targets import TargetHost
from fleet_sdk.tools import ssh
from fleet_sdk.tools.runner import CmdResult, Runner

UNREACHABLE = 255  # ssh's own failure: no connection, host key mismatch, refused authentication
SUDO_ASKS = "sudo: a password is required"  # sudo -n, when it would ask


def known_hosts_line(target: TargetHost, host_key: str) -> str:
    """The known_hosts line of `target` for the public key line `host_key` ("ssh-ed25519 AAAA… [comment]")."""
    fields = host_key.split()
    if len(fields) < 2 or not fields[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise ValueError(f"{host_key[:40]!r} is not an ssh public key line (type and base64 key)")
    host = f"[{target.host}]:{target.port}" if target.port else target.host
    return f"{host} {fields[0]} {fields[1]}\n"


def ssh_options(settings: DeploySettings, known_hosts: Path) -> tuple[str, ...]:
    """Strict host key checking against `known_hosts` only, batch mode, no connection sharing."""
    return (
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={settings.connect_timeout}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "UpdateHostKeys=no",
        "-o", "ControlMaster=no",
        "-o", "ControlPath=none",
        "-o", "ServerAliveInterval=10",
        "-o", "ServerAliveCountMax=3",
        *settings.ssh_options,
    )  # fmt: skip


@dataclass(frozen=True)
class Remote:
    """One machine reached over ssh: `machine` names it in every error."""

    runner: Runner
    machine: str
    target: TargetHost
    base: tuple[str, ...]  # ssh's options (ssh_options) without port and identity
    identity_file: Path | None
    timeout: float

    @classmethod
    def for_request(cls, runner: Runner, request: DeployRequest, settings: DeploySettings, known_hosts: Path) -> Remote:
        target = ssh.parse_target(request.target)
        base = ssh_options(settings, known_hosts)
        return cls(runner, request.machine, target, base, request.identity_file, settings.command_timeout)

    @property
    def options(self) -> list[str]:
        return ssh.options(self.target, self.identity_file, self.base)

    @property
    def root(self) -> bool:
        return self.target.user == "root"

    def argv(self, command: Sequence[str], *, sudo: bool = True) -> list[str]:
        """The ssh argv running `command` on the target, through `sudo -n` unless we are root."""
        if sudo and not self.root:
            command = ["sudo", "-n", *command]
        return ["ssh", *self.options, "--", f"{self.target.user}@{self.target.host}", *map(shlex.quote, command)]

    def attempt(
        self, command: Sequence[str], *, input: bytes | None = None, timeout: float | None = None, sudo: bool = True
    ) -> CmdResult | None:
        """Run `command`; None when no answer came (no connection, a broken one, or its timeout), else
        its result, whatever its exit code. A sudo asking for a password raises SudoPasswordError."""
        try:
            result = self.runner.run(
                self.argv(command, sudo=sudo),
                input=input,
                timeout=timeout or self.timeout,
                check=False,
                hint=f"on {self.machine} ({self.target})",
            )
        except CommandError as e:
            if e.returncode is None:  # timed out; the runner killed ssh
                return None
            raise
        if result.returncode == UNREACHABLE:
            return None
        if not self.root and SUDO_ASKS in result.stderr.decode(errors="replace"):
            raise SudoPasswordError(
                self.machine,
                f"{self.target.user} on {self.target.host} needs a password for sudo ({SUDO_ASKS}); "
                "a deploy cannot type it. Allow it without one (nix-darwin: security.sudo.extraConfig "
                f"'{self.target.user} ALL=(ALL) NOPASSWD: ALL'), or deploy as root",
            )
        return result

    def run(
        self,
        command: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        what: str = "",
        sudo: bool = True,
    ) -> CmdResult:
        """Run `command`, which must succeed: TargetUnreachableError without an answer, DeployError
        naming `what` (and the command's stderr) when it fails."""
        result = self.attempt(command, input=input, timeout=timeout, sudo=sudo)
        if result is None:
            raise self.unreachable(what, timeout or self.timeout)
        if result.returncode != 0:
            raise DeployError(self.machine, f"{what or command[0]} failed (exit {result.returncode}){tail(result)}")
        return result

    def unreachable(self, what: str = "", timeout: float | None = None) -> TargetUnreachableError:
        during = f" ({what})" if what else ""
        within = f" within {timeout:g} s" if timeout else ""
        return TargetUnreachableError(
            self.machine,
            f"no answer over ssh from {self.target}{during}{within}. Check that it is up and reachable, that sshd "
            "runs, that your key is authorized, and that its host key is the one in the vars "
            "(openssh/ssh.id_ed25519.pub) or the --known-hosts file",
        )


def tail(result: CmdResult, lines: int = 12) -> str:
    text = (result.stderr or result.stdout).decode(errors="replace").strip()
    return (":\n  " + "\n  ".join(text.splitlines()[-lines:])) if text else ""
