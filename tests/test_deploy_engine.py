"""fleet_sdk.deploy's engine against a model of a machine (no processes): the order of the steps, what
each outcome of the switch leads to, and that no secret ever reaches an argv. The model answers the
engine's ssh commands by the script they run; RecordingRunner records every call."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from typing_extensions import override

from fleet_sdk.deploy import DeployRequest, DeploySettings, SecretFile, deploy_machine, deploy_machines, scripts
from fleet_sdk.deploy.secrets import digest
from fleet_sdk.testing import RecordingRunner
from fleet_sdk.tools.runner import CmdResult

OLD = "/nix/store/aaaa-nixos-system-web1-24.05"
NEW = "/nix/store/bbbb-nixos-system-web1-24.11"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyHostKeyHostKeyHostKeyHostKey0000"
SECRET = b"AGE-SECRET-KEY-1QQQSECRETSECRETSECRET"
SECRETS = {"/var/lib/sops-nix/key.txt": SecretFile(SECRET, "root", "root", 0o600)}
FAST = DeploySettings(switch_timeout=0.3, confirm_timeout=0.3, watchdog_seconds=1, lock_seconds=5, poll_interval=0.01)
NAMES = {getattr(scripts, n): n for n in dir(scripts) if n.isupper() and isinstance(getattr(scripts, n), str)}


@dataclass
class Machine:
    """What the engine can observe of a NixOS machine, and how its switch behaves."""

    current: str = OLD
    profile: str = OLD
    generation: int = 7
    digest: str = ""
    launcher: str = "systemd"
    busy: str | None = None
    switch_rc: int = 0
    switch_output: str = ""
    switch_hangs: bool = False
    lose_contact: bool = False  # the switch takes sshd down; the watchdog restores after 1 s
    unhealthy: bool = False
    sudo_asks: bool = False
    booted: Mapping[str, str] = field(default_factory=dict)
    parts: Mapping[str, str] = field(default_factory=dict)
    armed: bool = False
    fired: bool = False
    down_since: float | None = None
    rc: dict[str, int] = field(default_factory=dict)  # detached runs' exit codes by folder
    log: list[str] = field(default_factory=list)  # the scripts run, by name

    def run(self, argv: Sequence[str | Path], **kw: object) -> CmdResult:
        args = [str(a) for a in argv]
        if args[0] == "nix":
            self.log.append("nix copy")
            return CmdResult(tuple(args), 0, b"", b"")
        command = shlex.split(" ".join(args[args.index("--") + 2 :]))
        if command[:2] == ["sudo", "-n"]:
            if self.sudo_asks:
                return CmdResult(tuple(args), 1, b"", b"sudo: a password is required\n")
            command = command[2:]
        if self.down_since is not None:
            if time.monotonic() - self.down_since < 1:
                return CmdResult(tuple(args), 255, b"", b"ssh: connect to host: Connection refused\n")
            self.down_since, self.fired, self.armed, self.current = None, True, False, OLD  # watchdog
        rc, out = self.answer(command)
        return CmdResult(tuple(args), rc, out.encode(), b"")

    def answer(self, command: list[str]) -> tuple[int, str]:
        if command[0] == "systemd-run" or command[2:3] == [scripts.BACKGROUND]:
            return self.launch(command)
        if command[0] == "nix-store":
            self.log.append("build " + command[-1])
            return 0, f"{NEW}\n"
        if command[0] == "rm":
            self.log.append("disarm")
            was, self.armed = self.armed, False
            return (0 if was else 1), ""
        if command[0] == "systemctl" or command[2] not in NAMES:
            self.log.append("health")
            return (1 if self.unhealthy else 0), ""
        name = NAMES[command[2]].lower()
        self.log.append(name)
        handler: Callable[[list[str]], tuple[int, str]] = getattr(self, "read_current" if name == "current" else name)
        return handler(command[4:])

    def preflight(self, args: list[str]) -> tuple[int, str]:
        if self.busy is not None:
            return 75, f"busy={self.busy}\n"
        booted = "".join(f"booted_{k}={v}\n" for k, v in self.booted.items())
        return 0, (
            f"current={self.current}\nprofile={self.profile}\nprofile_link=system-{self.generation}-link\n"
            f"{booted}digest={self.digest}\nlauncher={self.launcher}\n"
        )

    def launch(self, command: list[str]) -> tuple[int, str]:
        directory = command[command.index(scripts.WRAPPER) + 2]
        rollback = directory.endswith("/rollback")
        self.log.append("rollback" if rollback else "switch")
        if rollback:
            self.current, self.rc[directory] = OLD, 0
        elif self.lose_contact:  # the switch succeeds and takes sshd down with it
            self.current, self.down_since, self.rc[directory] = NEW, time.monotonic(), 0
        elif not self.switch_hangs:
            if "Pre-switch checks failed" not in self.switch_output:
                self.current = NEW
            self.rc[directory] = self.switch_rc
        return 0, ""

    def poll(self, args: list[str]) -> tuple[int, str]:
        if args[0] in self.rc:
            return 0, f"rc={self.rc[args[0]]}\n{self.switch_output}"
        return 0, "running\n"

    def arm(self, args: list[str]) -> tuple[int, str]:
        self.armed = True
        return 0, ""

    def read_current(self, args: list[str]) -> tuple[int, str]:
        return 0, f"{self.current}\n"

    def commit_nixos(self, args: list[str]) -> tuple[int, str]:
        self.profile, self.generation = args[0], self.generation + 1
        return 0, f"profile_link=system-{self.generation}-link\n"

    def state(self, args: list[str]) -> tuple[int, str]:
        flags = ("armed=1\n" if self.armed else "") + ("fired=1\nrestored=0\n" if self.fired else "")
        return 0, f"current={self.current}\n{flags}"

    def check_nixos(self, args: list[str]) -> tuple[int, str]:
        return 0, "".join(f"{k}={v}\n" for k, v in self.parts.items())

    def upload(self, args: list[str]) -> tuple[int, str]:
        self.digest = digest(SECRETS)
        return 0, ""

    def release(self, args: list[str]) -> tuple[int, str]:
        return 0, ""

    def kill(self, args: list[str]) -> tuple[int, str]:
        return 0, ""

    def reboot(self, args: list[str]) -> tuple[int, str]:
        self.booted = {}
        return 0, ""

    def after_reboot(self, args: list[str]) -> tuple[int, str]:
        return 0, f"{self.profile}\n"


def deploy(
    machine: Machine, settings: DeploySettings = FAST, **kw: object
) -> tuple[dict[str, object], RecordingRunner]:
    runner = RecordingRunner(delegate=machine)
    fields: dict[str, object] = {"machine": "web1", "target": "root@web1.zt", "system": NEW, "host_key": KEY, **kw}
    result = deploy_machine(DeployRequest(**fields), settings, runner, token="t0k3n")  # type: ignore[arg-type]
    return result.to_json(), runner


def steps(machine: Machine) -> list[str]:
    return [s for s in machine.log if s != "poll"]


def test_a_deploy_switches_confirms_then_commits() -> None:
    m = Machine()
    result, runner = deploy(m, secrets=SECRETS)
    assert result == {"machine": "web1", "status": "deployed", "previous": OLD, "current": NEW, "generation": 8,
                      "reboot_required": False, "rolled_back": False, "rebooted": False}  # fmt: skip
    assert steps(m) == ["preflight", "upload", "nix copy", "check_nixos", "arm", "switch", "current", "disarm",
                        "commit_nixos", "release"]  # fmt: skip
    assert m.profile == NEW and not m.armed
    copy = next(c for c in runner.calls if c.argv[0] == "nix")
    assert copy.argv == ("nix", "--extra-experimental-features", "nix-command", "copy", "--to",
                         "ssh-ng://root@web1.zt", "--no-check-sigs", "--", NEW)  # fmt: skip
    sshopts = copy.env["NIX_SSHOPTS"]  # type: ignore[index]
    assert "-o StrictHostKeyChecking=yes" in sshopts and "-o UserKnownHostsFile=/" in sshopts
    assert "ControlPath=none" in sshopts


def test_no_secret_reaches_an_argv_or_the_environment() -> None:
    m = Machine()
    _, runner = deploy(m, secrets=SECRETS)
    upload = [c for c in runner.calls if c.input]
    assert len(upload) == 1 and SECRET in upload[0].input  # type: ignore[operator]
    for call in runner.calls:
        assert SECRET.decode() not in " ".join(call.argv)
        assert SECRET.decode() not in json.dumps(call.env)


def test_nothing_happens_when_the_system_and_secrets_are_current() -> None:
    m = Machine(current=NEW, profile=NEW, digest=digest(SECRETS))
    result, _ = deploy(m, secrets=SECRETS)
    assert result["status"] == "unchanged" and result["current"] == NEW and result["generation"] == 7
    assert steps(m) == ["preflight", "release"]


def test_changed_secrets_alone_upload_and_activate_again() -> None:
    m = Machine(current=NEW, profile=NEW, digest="old")
    result, _ = deploy(m, secrets=SECRETS)
    assert result["status"] == "deployed" and "upload" in m.log and "switch" in m.log


def test_exit_2_rolls_back_and_names_the_machine() -> None:
    m = Machine(switch_rc=2, switch_output="Activation script snippet 'users' failed\n")
    result, _ = deploy(m)
    assert result["status"] == "rolled-back" and result["rolled_back"] is True and result["current"] == OLD
    assert str(result["error"]).startswith("machine web1: switch-to-configuration test failed with exit 2")
    assert "snippet 'users' failed" in str(result["error"])
    assert m.profile == OLD and "commit_nixos" not in m.log
    assert steps(m)[-4:] == ["rollback", "disarm", "current", "release"]


def test_exit_4_rolls_back_by_default_and_is_kept_when_told() -> None:
    out = "warning: the following units failed: nginx.service, acme-web1.service\n"
    result, _ = deploy(Machine(switch_rc=4, switch_output=out))
    assert result["rolled_back"] is True and result["failed_units"] == ["nginx.service", "acme-web1.service"]
    keep = DeploySettings(**{**FAST.__dict__, "on_unit_failure": "keep"})
    kept, _ = deploy(Machine(switch_rc=4, switch_output=out), keep)
    assert kept["status"] == "deployed" and kept["current"] == NEW and kept["rolled_back"] is False
    assert kept["failed_units"] == ["nginx.service", "acme-web1.service"]


def test_an_inhibitor_makes_it_the_boot_default_and_asks_for_a_reboot() -> None:
    m = Machine(switch_rc=1, switch_output="Pre-switch checks failed\n")
    result, _ = deploy(m)
    assert result["status"] == "deployed" and result["reboot_required"] is True and result["current"] == OLD
    assert m.profile == NEW and "rollback" not in m.log


def test_a_failed_health_check_rolls_back() -> None:
    settings = DeploySettings(**{**FAST.__dict__, "health_units": ("nginx.service",)})
    result, _ = deploy(Machine(unhealthy=True), settings)
    assert result["rolled_back"] is True and result["failed_check"] == "unit nginx.service"


def test_a_hung_switch_is_stopped_and_rolled_back() -> None:
    m = Machine(switch_hangs=True)
    result, _ = deploy(m)
    assert result["rolled_back"] is True and "did not end within 0.3 s" in str(result["error"])
    assert m.log.index("kill") < m.log.index("rollback")


def test_lost_contact_waits_for_the_watchdog() -> None:
    m = Machine(lose_contact=True)
    started = time.monotonic()
    result, _ = deploy(m)
    assert result["status"] == "rolled-back" and result["rolled_back"] is True and result["current"] == OLD
    assert "the watchdog restored" in str(result["error"]) and m.profile == OLD
    assert time.monotonic() - started < 5


def test_a_held_lock_refuses_the_deploy_and_names_the_machine() -> None:
    m = Machine(busy="abcd1234 1900000000 ops:42")
    result, _ = deploy(m)
    assert result["status"] == "failed"
    assert str(result["error"]).startswith("machine web1: another deploy holds it")
    assert "ops:42" in str(result["error"])
    assert steps(m) == ["preflight"]  # not even a release: the lock is another's


def test_sudo_asking_for_a_password_is_named() -> None:
    m = Machine(sudo_asks=True)
    result, _ = deploy(m, target="crs58@stibnite.zt", machine_class="darwin")
    assert "machine web1: crs58 on stibnite.zt needs a password for sudo" in str(result["error"])


def test_an_unreachable_machine_fails_alone() -> None:
    class Down:
        def run(self, argv: Sequence[str | Path], **kw: object) -> CmdResult:
            return CmdResult(tuple(map(str, argv)), 255, b"", b"Host key verification failed.\n")

    ok = Machine()
    runners = {"web1": RecordingRunner(delegate=Down()), "web2": RecordingRunner(delegate=ok)}

    class ByHost:
        def run(self, argv: Sequence[str | Path], **kw: object) -> CmdResult:
            host = "web1" if any("web1.zt" in str(a) for a in argv) else "web2"
            return runners[host].run(argv, **kw)  # type: ignore[arg-type]

    requests = [DeployRequest(m, f"root@{m}.zt", NEW, host_key=KEY) for m in ("web1", "web2")]
    results = deploy_machines(requests, FAST, ByHost(), jobs=2)
    assert [r.status for r in results] == ["failed", "deployed"]
    assert str(results[0].error).startswith("machine web1: no answer over ssh from root@web1.zt (preflight)")


def test_if_needed_reboots_when_the_kernel_changed() -> None:
    booted = {"kernel": "/nix/store/k1", "initrd": "/nix/store/i1", "kernel-modules": "/nix/store/m1"}
    m = Machine(booted=booted, parts={**booted, "kernel": "/nix/store/k2"})
    result, _ = deploy(m)
    assert result["reboot_required"] is True and result["rebooted"] is False
    m = Machine(booted=booted, parts={**booted, "kernel": "/nix/store/k2"})
    settings = DeploySettings(**{**FAST.__dict__, "reboot": "if-needed"})
    rebooted, _ = deploy(m, settings)
    assert rebooted["rebooted"] is True and rebooted["reboot_required"] is False and rebooted["current"] == NEW


def test_a_path_that_is_no_system_is_refused_before_activation() -> None:
    class NoSystem(Machine):
        @override
        def check_nixos(self, args: list[str]) -> tuple[int, str]:
            return 3, ""

    m = NoSystem()
    result, _ = deploy(m)
    assert "is not a NixOS system closure" in str(result["error"]) and "arm" not in m.log


def test_no_host_key_no_deploy() -> None:
    runner = RecordingRunner()
    result = deploy_machine(DeployRequest("web1", "root@web1.zt", NEW), FAST, runner)
    assert "no ssh host key" in str(result.error) and runner.calls == []


def test_build_on_the_target_copies_the_derivation_and_realises_it_there() -> None:
    m = Machine()
    drv = "/nix/store/cccc-nixos-system-web1-24.11.drv"
    settings = DeploySettings(**{**FAST.__dict__, "build_on": "remote"})
    result, runner = deploy(m, settings, drv_path=drv, target="admin@web1.zt")
    assert result["status"] == "deployed"
    assert steps(m)[:4] == ["preflight", "nix copy", f"build {drv}", "check_nixos"]
    copy = next(c for c in runner.calls if c.argv[0] == "nix")
    assert copy.argv[-3:] == ("--derivation", "--", drv) and "ssh-ng://admin@web1.zt" in copy.argv
    build = next(c for c in runner.calls if "nix-store" in c.argv)
    assert build.argv[-3:] == ("nix-store", "--realise", drv)  # as the user, through its daemon: no sudo
    assert "sudo" not in build.argv and build.timeout == settings.copy_timeout


def test_a_darwin_copy_reaches_nix_through_a_login_shell() -> None:
    class Darwin(Machine):
        @override
        def check_nixos(self, args: list[str]) -> tuple[int, str]:
            raise AssertionError("a darwin closure is checked as such")

        def check_darwin(self, args: list[str]) -> tuple[int, str]:
            return 0, ""

        def commit_darwin(self, args: list[str]) -> tuple[int, str]:
            return self.commit_nixos(args)

    m = Darwin()
    result, runner = deploy(m, target="crs58@stibnite.zt", machine_class="darwin")
    assert result["status"] == "deployed" and m.profile == NEW
    copy = next(c for c in runner.calls if c.argv[0] == "nix")
    assert copy.argv[5] == "ssh-ng://crs58@stibnite.zt?remote-program=bash%20-lc%20%27exec%20nix-daemon%20--stdio%27"
    ssh_calls = [c.argv for c in runner.calls if c.argv[0] == "ssh"]
    assert all(
        a[a.index("crs58@stibnite.zt") + 1 : a.index("crs58@stibnite.zt") + 3] == ("sudo", "-n") for a in ssh_calls
    )
