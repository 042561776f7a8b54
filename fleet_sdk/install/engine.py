"""Install one machine (reference/deploy.md §1, §8): wait for its server, read its facts, adopt it if
it already runs NixOS with the machine's host key, else run nixos-anywhere one phase at a time with a
checkpoint after each, and after the reboot check the new system strictly against the host key from
vars. Never wipes an installed machine unless it says `reinstall=True`. Every failure ends in an
InstallResult naming the machine; nothing raises past `install_machine` but bugs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleet_sdk.errors import CommandError, FleetError, InstallError, WipeRefusedError
from fleet_sdk.fs import private
from fleet_sdk.install import extrafiles, records
from fleet_sdk.install.checkpoint import Checkpoint
from fleet_sdk.install.model import InstallRequest, InstallResult, InstallSettings, TargetFacts
from fleet_sdk.install.target import Link, fingerprint, key_fields
from fleet_sdk.targets import TargetHost
from fleet_sdk.tools import nixos_anywhere, ssh
from fleet_sdk.tools.nixos_anywhere import PHASES, Install
from fleet_sdk.tools.runner import LOCAL, Runner
from fleet_sdk.vars.lock import repository_lock

Progress = Callable[[str, str], None]  # (machine, message)
LOCK_NAME = "fleet machine install"  # how the repository lock names us to other writers
# nixos-facter in the installer, else from nixpkgs (as nixos-anywhere's --generate-hardware-config)
FACTER = ["sh", "-c", "command -v nixos-facter >/dev/null && exec nixos-facter; "
          "exec nix --extra-experimental-features 'nix-command flakes' run nixpkgs#nixos-facter"]  # fmt: skip


def install_machine(
    request: InstallRequest,
    settings: InstallSettings | None = None,
    runner: Runner = LOCAL,
    progress: Progress | None = None,
) -> InstallResult:
    run = _Install(request, settings or InstallSettings(), runner, progress)
    try:
        return run.run()
    except FleetError as e:
        return InstallResult(request.machine, "failed", run.ran, error=str(e))


@dataclass
class _Install:
    request: InstallRequest
    settings: InstallSettings
    runner: Runner
    progress: Progress | None
    ran: list[str] = field(default_factory=list)
    ssh: Link | None = None  # to the server as it is now (the installer after kexec)

    def say(self, message: str) -> None:
        if self.progress:
            self.progress(self.request.machine, message)

    def run(self) -> InstallResult:
        r = self.request
        if unknown := [p for p in r.phases if p not in PHASES]:
            raise InstallError(r.machine, f"unknown phases {unknown}: the phases are {', '.join(PHASES)}")
        if not key_fields(r.host_key):
            raise InstallError(
                r.machine, "its ssh host key from vars is not a public key line; run `fleet vars generate`"
            )
        target = ssh.parse_target(r.target)
        digest = records.layout_digest(r.layout)
        with private.private_dir("install") as ram:
            prepared = extrafiles.prepare(ram, r, digest)
            link = self.ssh = self.link(target, prepared.identity_file, ram)
            self.say(f"waiting for ssh on {target} (at most {self.settings.timeout:g} s)")
            facts = link.wait(self.settings.timeout, "before the install")
            if self.adopt(facts, digest):
                self.say(f"adopted: it runs NixOS ({facts.system}) with its own host key; nothing was run")
                self.record(target, digest)
                return InstallResult(r.machine, "adopted", [], facts.system, fingerprint(r.host_key))
            checkpoint = Checkpoint.load(r.repo, r.machine, str(target), digest)
            for phase in self.todo(facts, checkpoint):
                self.phase(phase, prepared, target)
                checkpoint.mark(phase)
                self.ran.append(phase)
                if phase == "kexec":
                    target = TargetHost("root", target.host, target.port)  # the installer is root's
                    link = self.ssh = self.link(target, prepared.identity_file, ram)
                    facts = link.wait(self.settings.timeout, "after kexec")
                    if not facts.installer:
                        raise InstallError(
                            r.machine, f"after kexec {target} runs {facts.describe()}, not the installer"
                        )
            if "reboot" not in r.phases:
                return InstallResult(r.machine, "partial", self.ran)
            return self.finish(link, target, digest, checkpoint)

    def link(self, target: TargetHost, identity: Path | None, ram: Path) -> Link:
        strict = ram / "known_hosts"
        line_host = f"[{target.host}]:{target.port}" if target.port else target.host
        strict.write_text(f"{line_host} {key_fields(self.request.host_key)}\n")
        s = self.settings
        return Link(
            self.runner, self.request.machine, target, identity, ram / "seen", strict, s.connect_timeout, s.poll
        )

    def adopt(self, facts: TargetFacts, digest: str | None) -> bool:
        """True for the machine itself, installed: leave it. Refuses to wipe any installed NixOS
        (this machine with another layout, or another machine) unless the machine allows it."""
        r = self.request
        if not facts.nixos:
            return False
        ours = facts.host_key == key_fields(r.host_key)
        if not ours:
            if r.reinstall:
                return False
            raise WipeRefusedError(
                r.machine,
                f"{r.target} already runs NixOS ({facts.system}) with host key {_fp(facts.host_key)}, not the "
                f"machine's ({fingerprint(r.host_key)}): it may be another machine, or this one installed "
                "without its vars. Installing would wipe its disks, so nothing was run. Check the address; "
                "to wipe it, set reinstall=True on the machine",
            )
        was = facts.marker.get("layout")
        if was is None or was == digest:
            return True
        if r.reinstall:
            return False
        raise WipeRefusedError(
            r.machine,
            f"it is installed with another disk layout ({was}; the stack's is now {digest}). Installing "
            "again would wipe its disks, so nothing was run. Revert the layout, or set reinstall=True on "
            "the machine to reinstall it",
        )

    def todo(self, facts: TargetFacts, checkpoint: Checkpoint) -> list[str]:
        """The requested phases still to run: none done for this server and layout before (when it
        is still the installer those phases left), no kexec into an installer already running."""
        if not facts.installer and checkpoint.done:
            checkpoint.clear()  # the server rebooted out of the installer: its work is gone
        wanted = [p for p in PHASES if p in self.request.phases]
        todo = [p for p in wanted if p not in checkpoint.done and not (p == "kexec" and facts.installer)]
        if checkpoint.done and todo:
            self.say(f"resuming at the {todo[0]} phase ({', '.join(checkpoint.done)} done before)")
        if not facts.installer and todo and todo[0] != "kexec":
            raise InstallError(
                self.request.machine,
                f"{self.request.target} runs {facts.describe()}, not the installer; the {todo[0]} phase "
                "needs the installer: include the kexec phase",
            )
        return todo

    def phase(self, phase: str, prepared: extrafiles.Prepared, target: TargetHost) -> None:
        r = self.request
        if phase == "disko":
            self.before_evaluation()
        request = Install(
            flake=r.flake,
            machine=r.machine,
            target=str(target),
            identity_file=prepared.identity_file,
            extra_files=prepared.extra if phase == "install" else None,
            disk_keys=prepared.disk_keys if phase == "disko" else (),
            phases=(phase,),
        )
        self.say(f"nixos-anywhere --phases {phase}")
        try:
            nixos_anywhere.install(self.runner, request, timeout=self.settings.phase_timeout)
        except CommandError as e:
            raise InstallError(r.machine, f"the {phase} phase failed; run again to resume at it: {e}") from None

    def before_evaluation(self) -> None:
        """disko.json and facter.json in the repository (tracked) before nixos-anywhere evaluates."""
        r = self.request
        if r.layout is None:
            raise InstallError(r.machine, "declares no disks: set Machine.disks (its disko layout) to install it")
        self.say("reading the hardware with nixos-facter")
        assert self.ssh is not None
        done = self.ssh.attempt(FACTER, strict=False, timeout=300)
        if done is None or done.returncode != 0:
            raise InstallError(r.machine, "nixos-facter did not run in the installer; the hardware report is missing")
        with repository_lock(r.repo, LOCK_NAME):  # installs run side by side; so do vars steps
            written = [records.write_layout(r.repo, r.machine, r.layout)]
            written.append(records.write_facter(r.repo, r.machine, done.stdout))
            records.track(self.runner, r.repo, written)

    def finish(self, link: Link, target: TargetHost, digest: str | None, checkpoint: Checkpoint) -> InstallResult:
        r = self.request
        self.say(f"waiting for {r.machine} to boot its system (at most {self.settings.timeout:g} s)")
        facts = link.wait(self.settings.timeout, "after the reboot into the installed system", strict=True)
        if not facts.nixos:
            raise InstallError(r.machine, f"after the reboot {target} runs {facts.describe()}, not its installed NixOS")
        checkpoint.clear()
        self.record(target, digest)
        self.say(f"installed: it runs {facts.system}")
        return InstallResult(r.machine, "installed", self.ran, facts.system, fingerprint(r.host_key))

    def record(self, target: TargetHost, digest: str | None) -> None:
        r = self.request
        key = key_fields(r.host_key)
        # known_hosts is read, changed and written back, and git's index takes one writer at a time
        with repository_lock(r.repo, LOCK_NAME):
            written = [
                records.write_known_host(r.repo, r.machine, target, key),
                records.write_installed(r.repo, r.machine, digest, fingerprint(key)),
            ]
            records.track(self.runner, r.repo, written)


def _fp(key: str) -> str:
    return fingerprint(key) if key else "unknown"
