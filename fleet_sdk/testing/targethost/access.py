"""Talking to a target: its ssh address, keys and options, commands over a new ssh connection,
and commands run inside its namespaces without ssh (nsenter)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from fleet_sdk.errors import CommandError, FleetError
from fleet_sdk.testing.targethost.namespace import Boot
from fleet_sdk.testing.targethost.shims import TARGET_PATH


class TargetAccess:
    """FakeTarget's ssh and nsenter side; FakeTarget sets the attributes and boots `_boot`."""

    root: Path
    name: str
    address: str  # the loopback address its sshd listens on (127.0.0.1 unless given)
    port: int
    _client_key: Path | None
    _boot: Boot | None

    @property
    def running(self) -> bool:
        return self._boot is not None and self._boot.proc.poll() is None

    def _check_running(self) -> Boot:
        boot = self._boot
        if boot is None or boot.proc.poll() is not None or not boot.init_pid:
            raise FleetError(f"target {self.name} is not running")
        return boot

    @property
    def target(self) -> str:
        return f"root@{self.address}:{self.port}"

    def user_target(self, user: str) -> str:
        return f"{user}@{self.address}:{self.port}"

    @property
    def client_key(self) -> Path:
        """A private key authorised for root and every login user."""
        return self._client_key or self.root / "client" / "id_ed25519"

    @property
    def host_public_key(self) -> str:
        """The host key's public line, "ssh-ed25519 AAAA…"."""
        fields = (self.root / "etc-ssh" / "ssh_host_ed25519_key.pub").read_text().split()
        return f"{fields[0]} {fields[1]}"

    def known_hosts_line(self) -> str:
        """ "[ADDRESS]:PORT ssh-ed25519 AAAA…", what a known_hosts file needs for strict checking."""
        return f"[{self.address}]:{self.port} {self.host_public_key}"

    @property
    def known_hosts(self) -> Path:
        """A known_hosts file holding known_hosts_line()."""
        return self.root / "known_hosts"

    def ssh_options(self) -> list[str]:
        """ssh's options for this target: port, client key, strict checking against `known_hosts`,
        no user or system ssh config."""
        return [
            "-F",
            "/dev/null",
            "-p",
            str(self.port),
            "-i",
            str(self.client_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
        ]

    @property
    def nix_sshopts(self) -> str:
        """NIX_SSHOPTS for `nix copy --to ssh-ng://root@ADDRESS` (nix splits it on spaces)."""
        options = self.ssh_options()
        if any(" " in o for o in options):
            raise FleetError(f"target {self.name}: NIX_SSHOPTS cannot hold a path with spaces ({self.root})")
        return " ".join(options)

    def ssh_argv(self, *command: str, user: str = "root") -> list[str]:
        return ["ssh", *self.ssh_options(), f"{user}@{self.address}", "--", *command]

    def ssh(
        self, command: str, *, input: str | None = None, check: bool = True, timeout: float = 30, user: str = "root"
    ) -> subprocess.CompletedProcess[str]:
        """`command` run by the login shell over a new ssh connection."""
        argv = self.ssh_argv(command, user=user)
        done = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise CommandError(argv, done.returncode, done.stderr.encode(), hint=f"(target {self.name})")
        return done

    def run(
        self, command: str | Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """`command` (argv, or a string for /bin/sh -c) run as root inside the target without ssh,
        for inspection and for faults; it works while the listener is down."""
        boot = self._check_running()
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        enter = ["nsenter", "-t", str(boot.init_pid), "-m", "-p", "--"]
        done = subprocess.run(
            [*enter, "env", "-i", f"PATH={TARGET_PATH}", "HOME=/root", *argv],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd="/",
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise CommandError(argv, done.returncode, done.stderr.encode(), hint=f"(inside target {self.name})")
        return done
