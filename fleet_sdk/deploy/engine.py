"""Deploy one machine (reference/deploy.md §8): preflight and lock, secrets, closure, check, then the
watched activation (fleet_sdk.deploy.activation). Every failure ends in a DeployResult naming the
machine; nothing raises past `deploy_machine` but bugs.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.deploy import secrets
from fleet_sdk.deploy.activation import Activation
from fleet_sdk.deploy.commands import DeployCommands, deploy_commands, preflight_argv
from fleet_sdk.deploy.model import DeployRequest, DeployResult, Facts
from fleet_sdk.deploy.remote import Remote, known_hosts_line, tail
from fleet_sdk.deploy.settings import DeploySettings
from fleet_sdk.errors import CommandError, DeployError, DeployLockedError, FleetError, NotASystemError
from fleet_sdk.fs import private
from fleet_sdk.tools import nix, ssh
from fleet_sdk.tools.runner import LOCAL, Runner

Progress = Callable[[str, str], None]  # (machine, message)
BUSY = 75  # scripts.PREFLIGHT: another deploy or switch holds the machine
# nix-darwin's non-login ssh shell has no Nix on PATH (deploy.md §2, clan's darwin update)
DARWIN_STORE = {"remote-program": "bash -lc 'exec nix-daemon --stdio'"}


def deploy_machine(
    request: DeployRequest,
    settings: DeploySettings | None = None,
    runner: Runner = LOCAL,
    progress: Progress | None = None,
    token: str | None = None,
) -> DeployResult:
    """Deploy `request.system` to one machine; `token` (random by default) names this run on the target."""
    settings = settings or DeploySettings()
    token = token or os.urandom(4).hex()
    try:
        secrets.check_paths(request.machine, request.secrets, settings.secrets_root)
        with _known_hosts(request) as known_hosts:
            remote = Remote.for_request(runner, request, settings, known_hosts)
            return _Deploy(request, settings, remote, token, progress).run()
    except FleetError as e:
        return DeployResult(request.machine, "failed", error=str(e))


@contextmanager
def _known_hosts(request: DeployRequest) -> Iterator[Path]:
    """The given known_hosts file, or one written from the host key into a private folder."""
    if request.known_hosts is not None:
        yield request.known_hosts
        return
    if not request.host_key:
        raise DeployError(
            request.machine,
            "no ssh host key to check the machine against: generate its vars (openssh) or pass --known-hosts",
        )
    try:
        line = known_hosts_line(ssh.parse_target(request.target), request.host_key)
    except ValueError as e:
        raise DeployError(request.machine, f"host key: {e}") from None
    with private.private_dir("deploy") as folder:
        path = folder / "known_hosts"
        path.write_text(line)
        yield path


def _who() -> str:
    """This run as the lock's owner shows it: host and pid, no spaces."""
    return re.sub(r"[^A-Za-z0-9._:-]", "_", f"{socket.gethostname()}:{os.getpid()}")


@dataclass
class _Deploy:
    request: DeployRequest
    settings: DeploySettings
    remote: Remote
    token: str
    progress: Progress | None

    def say(self, message: str) -> None:
        if self.progress:
            self.progress(self.request.machine, message)

    def run(self) -> DeployResult:
        facts = self.preflight()
        commands = deploy_commands(self.request, self.settings, facts, self.token)
        try:
            if commands.unchanged:
                self.say("unchanged: the system and secrets are current")
                return DeployResult(self.request.machine, "unchanged", facts.current, facts.current, facts.generation)
            self.transfer(commands)
            parts = self.check(commands)
            return Activation(self.request, self.settings, self.remote, commands, facts, parts, self.say).run()
        finally:
            self.remote.attempt(commands.release)

    def preflight(self) -> Facts:
        self.say(f"preflight on {self.remote.target}")
        argv = preflight_argv(self.settings, self.token, _who())
        result = self.remote.attempt(argv)
        if result is None:
            raise self.remote.unreachable("preflight")
        if result.returncode == BUSY:
            raise DeployLockedError(self.request.machine, _busy_message(result.text, self.settings))
        if result.returncode != 0:
            raise DeployError(self.request.machine, f"the preflight failed (exit {result.returncode}){tail(result)}")
        return Facts.parse(result.text)

    def transfer(self, commands: DeployCommands) -> None:
        if commands.upload is not None:
            self.say(f"uploading {len(self.request.secrets)} secret file(s) to {self.settings.secrets_root}")
            archive = secrets.archive(self.request.secrets, self.settings.secrets_root, commands.digest)
            self.remote.run(commands.upload, input=archive, what="uploading the secrets")
        if commands.build is not None and self.request.drv_path:
            self.say(f"copying {self.request.drv_path} and building it on the target")
            self.copy_derivation(self.request.drv_path)
            self.remote.run(
                commands.build, timeout=self.settings.copy_timeout, what="building the system on the target", sudo=False
            )
        else:
            self.say(f"copying {commands.system}")
            self.copy(commands.system)

    def copy(self, path: str) -> None:
        """nix copy over ssh-ng, unsigned paths accepted: root (or a trusted user) may (deploy.md §6)."""
        darwin = self.request.machine_class == "darwin"
        try:
            nix.copy_closure(
                self.remote.runner,
                path,
                self.request.target,
                identity_file=self.remote.identity_file,
                ssh_options=self.remote.base,
                settings=DARWIN_STORE if darwin else None,
                check_sigs=False,
                timeout=self.settings.copy_timeout,
            )
        except CommandError as e:
            raise DeployError(self.request.machine, f"copying {path} failed: {e}") from None

    def copy_derivation(self, drv: str) -> None:
        """The derivation's closure, to build on the target. `--derivation`: without it Nix copies a
        .drv's outputs, which do not exist yet (tools.nix.copy_closure has no switch for it yet)."""
        darwin = self.request.machine_class == "darwin"
        url = nix.store_url(self.request.target, settings=DARWIN_STORE if darwin else None)
        argv = nix.copy_argv(drv, url, check_sigs=False)
        argv.insert(argv.index("--"), "--derivation")
        sshopts = nix.nix_sshopts(self.request.target, self.remote.identity_file, self.remote.base)
        try:
            self.remote.runner.run(argv, env={"NIX_SSHOPTS": sshopts}, timeout=self.settings.copy_timeout)
        except CommandError as e:
            raise DeployError(self.request.machine, f"copying {drv} failed: {e}") from None

    def check(self, commands: DeployCommands) -> dict[str, str]:
        result = self.remote.attempt(commands.check)
        if result is None:
            raise self.remote.unreachable("checking the system closure")
        if result.returncode != 0:
            kind = "nix-darwin" if self.request.machine_class == "darwin" else "NixOS"
            raise NotASystemError(
                self.request.machine,
                f"{commands.system} is not a {kind} system closure (no {_markers(kind)}); deploy the "
                "toplevel of the machine's configuration",
            )
        return dict(line.partition("=")[::2] for line in result.text.splitlines() if "=" in line)


def _markers(kind: str) -> str:
    return "darwin-version or activate" if kind == "nix-darwin" else "nixos-version or bin/switch-to-configuration"


def _busy_message(output: str, settings: DeploySettings) -> str:
    holder = next((line[5:] for line in output.splitlines() if line.startswith("busy=")), "")
    if holder == "switch-to-configuration":
        return (
            "a switch-to-configuration is running on it (its lock /run/nixos/switch-to-configuration.lock is "
            "held); nothing was changed. Wait for it to end and deploy again"
        )
    token, _, rest = holder.partition(" ")
    expiry, _, who = rest.partition(" ")
    by = f" by {who}" if who else ""
    return (
        f"another deploy holds it (lock {settings.state_dir}/lock, run {token or '?'}{by}, expires at epoch "
        f"{expiry or '?'}); nothing was changed. Wait for that deploy to end; if none is running, remove "
        f"{settings.state_dir}/lock on the machine"
    )
