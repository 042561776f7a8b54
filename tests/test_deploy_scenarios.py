"""The deploy engine against target hosts (fleet_sdk.testing: real sshd, nix copy, fake systems built by
the real nix whose switch-to-configuration records its calls). Each scenario reads the outcome from the
target's state and records, not from engine internals; each fault has a negative control: a naive
deploy (`nix-env --set` + `switch-to-configuration switch` over plain ssh) ends on the bad system or
hangs, which shows the scenario bites (reference/deploy.md §9)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.deploy import DeployRequest, DeployResult, DeploySettings, SecretFile, deploy_machine
from fleet_sdk.testing import FakeFlake, FakeSystem, FakeTarget, FakeTargets, RecordingRunner, nix_env
from fleet_sdk.testing.targethost import missing_requirements
from fleet_sdk.tools.runner import LOCAL, Runner

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_requirements()), reason="; ".join(missing_requirements())),
]

# deadlines scaled down through settings only (deploy.md §9.6)
SETTINGS = DeploySettings(
    connect_timeout=2,
    command_timeout=20,
    copy_timeout=120,
    switch_timeout=3,
    confirm_timeout=2,
    watchdog_seconds=6,
    reboot_timeout=20,
    lock_seconds=30,
    poll_interval=0.1,
)
SECRET = b"AGE-SECRET-KEY-1FLEETSCENARIOSECRETQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
SECRETS = {"/var/lib/sops-nix/key.txt": SecretFile(SECRET, "root", "root", 0o600)}


@dataclass
class Scene:
    flake: FakeFlake
    target: FakeTarget
    old: str  # the installed system

    def system(self, **changes: Any) -> str:
        """A new generation of web1 (the version bumped so the path changes), built here."""
        current = self.flake.machines["web1"]
        self.flake.set("web1", **{"extra": current.extra + "+", **changes})
        return self.flake.build("web1")

    def deploy(
        self, system: str, settings: DeploySettings = SETTINGS, runner: Runner = LOCAL, **kw: object
    ) -> DeployResult:
        request = DeployRequest(
            "web1",
            self.target.target,
            system,
            host_key=self.target.host_public_key,
            identity_file=self.target.client_key,
            **kw,  # type: ignore[arg-type]
        )
        return deploy_machine(request, settings, runner)

    def naive(self, system: str, timeout: float = 10) -> subprocess.CompletedProcess[str] | None:
        """What a deploy without this engine does (nixos-anywhere's terraform deploy.sh, §1): copy,
        set the profile, `switch` over the same ssh session. None when it hangs past `timeout`."""
        env = {**nix_env(), "NIX_SSHOPTS": self.target.nix_sshopts}
        to = "ssh-ng://root@127.0.0.1"  # the port is in NIX_SSHOPTS
        subprocess.run(["nix", "copy", "--no-check-sigs", "--to", to, system], env=env, check=True, capture_output=True)
        command = (
            f"nix-env -p /nix/var/nix/profiles/system --set {system} && {system}/bin/switch-to-configuration switch"
        )
        try:
            return self.target.ssh(command, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stc(self, action: str | None = None) -> list[dict[str, object]]:
        calls = self.target.calls("switch-to-configuration")
        return [c for c in calls if action is None or c.get("action") == action]


@pytest.fixture
def scene(tmp_path: Path, target_hosts: FakeTargets, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scene]:
    for key, value in nix_env().items():
        if key == "NIX_CONFIG":
            monkeypatch.setenv(key, value)
    flake = FakeFlake(tmp_path / "flake", {"web1": FakeSystem(version="24.11.1")})
    old = flake.build("web1")
    target = target_hosts.new("web1")
    target.install(old)
    assert target.current_system() == old
    yield Scene(flake, target, old)


def test_a_changed_closure_is_switched_confirmed_and_made_the_boot_default(scene: Scene) -> None:
    new = scene.system(version="24.11.2")
    runner = RecordingRunner(delegate=LOCAL)
    result = scene.deploy(new, secrets=SECRETS, runner=runner)
    assert result.to_json() == {"machine": "web1", "status": "deployed", "previous": scene.old, "current": new,
                                "generation": 2, "reboot_required": False, "rolled_back": False,
                                "rebooted": False}  # fmt: skip
    t = scene.target
    assert (t.current_system(), t.profile_system(), t.booted_system()) == (new, new, scene.old)
    assert [(c["action"], c["toplevel"], c["detached"]) for c in scene.stc()] == [
        ("test", new, True),  # the switch, detached from the ssh session, profile untouched
        ("boot", new, False),  # only after the confirmation
    ]
    key = t.path("/var/lib/sops-nix/key.txt")
    assert key.read_bytes() == SECRET and oct(key.stat().st_mode & 0o7777) == "0o600" and key.stat().st_uid == 0
    assert oct(t.path("/var/lib/sops-nix").stat().st_mode & 0o777) == "0o700"
    # leak checks: no argv, no store path, no record of the target holds the secret
    assert all(SECRET.decode() not in " ".join(c.argv) for c in runner.calls)
    assert SECRET not in (t.root / "var/log/fleet-harness/calls.jsonl").read_bytes()
    found = subprocess.run(
        ["grep", "-rlF", SECRET.decode(), str(t.root / "nix/store")], check=False, capture_output=True
    )
    assert found.stdout == b""
    assert not t.path("/run/fleet-deploy/lock").exists()


def test_no_change_activates_nothing(scene: Scene) -> None:
    new = scene.system()
    assert scene.deploy(new, secrets=SECRETS).status == "deployed"
    calls = len(scene.stc())
    again = scene.deploy(new, secrets=SECRETS)
    assert (again.status, again.current, again.generation) == ("unchanged", new, 2)
    assert len(scene.stc()) == calls  # nothing activated
    changed = scene.deploy(new, secrets={**SECRETS, "/var/lib/sops-nix/key.txt": SecretFile(b"AGE-SECRET-KEY-1NEW")})
    assert changed.status == "deployed" and len(scene.stc("test")) == 2  # new secrets: activated again


def test_exit_2_rolls_back_and_names_the_machine(scene: Scene) -> None:
    bad = scene.system(behaviour="exit2")
    result = scene.deploy(bad)
    assert result.status == "rolled-back" and result.rolled_back and result.current == scene.old
    assert result.error is not None and result.error.startswith("machine web1: switch-to-configuration test failed")
    t = scene.target
    assert (t.current_system(), t.profile_system()) == (scene.old, scene.old)
    assert [(c["action"], c["toplevel"]) for c in scene.stc()] == [("test", bad), ("test", scene.old)]
    # negative control: the naive deploy ends on the bad system, profile and boot entry included
    assert scene.naive(bad) is not None
    assert (t.current_system(), t.profile_system()) == (bad, bad)


def test_exit_4_rolls_back_or_is_kept(scene: Scene) -> None:
    bad = scene.system(behaviour="exit4")
    result = scene.deploy(bad)
    assert result.rolled_back and result.failed_units == ("fake.service",)
    assert scene.target.current_system() == scene.old
    keep = DeploySettings(**{**SETTINGS.__dict__, "on_unit_failure": "keep"})
    kept = scene.deploy(bad, keep)
    assert (kept.status, kept.rolled_back, kept.failed_units) == ("deployed", False, ("fake.service",))
    assert (scene.target.current_system(), scene.target.profile_system()) == (bad, bad)


def test_lost_ssh_is_undone_by_the_watchdog(scene: Scene) -> None:
    bad = scene.system(behaviour="kill-ssh")
    result = scene.deploy(bad)
    assert result.status == "rolled-back" and result.rolled_back and result.current == scene.old
    assert result.error is not None and "the watchdog restored" in result.error
    t = scene.target
    assert (t.current_system(), t.profile_system()) == (scene.old, scene.old)
    assert [(c["action"], c["toplevel"]) for c in scene.stc()] == [("test", bad), ("test", scene.old)]
    # negative control: the naive deploy loses the machine on the bad system, for good
    scene.naive(bad)
    assert (t.current_system(), t.profile_system()) == (bad, bad)
    assert subprocess.run(t.ssh_argv("true"), check=False, capture_output=True, timeout=20).returncode == 255


def test_a_hung_switch_is_stopped_and_rolled_back(scene: Scene) -> None:
    bad = scene.system(behaviour="hang")
    result = scene.deploy(bad)
    assert result.rolled_back and result.error is not None and "did not end within 3 s" in result.error
    assert (scene.target.current_system(), scene.target.profile_system()) == (scene.old, scene.old)
    assert scene.naive(bad, timeout=5) is None  # negative control: the naive deploy hangs


def test_an_inhibitor_gives_the_boot_entry_and_a_reboot_required(scene: Scene) -> None:
    new = scene.system(behaviour="inhibit")
    result = scene.deploy(new)
    assert (result.status, result.reboot_required, result.rolled_back) == ("deployed", True, False)
    t = scene.target
    assert (t.current_system(), t.profile_system()) == (scene.old, new)
    reboot = DeploySettings(**{**SETTINGS.__dict__, "reboot": "if-needed"})
    newer, boots = scene.system(behaviour="inhibit"), t.boot
    rebooted = scene.deploy(newer, reboot)
    assert (rebooted.status, rebooted.rebooted, rebooted.reboot_required) == ("deployed", True, False)
    assert (t.current_system(), t.booted_system(), t.boot) == (newer, newer, boots + 1)
    assert [c["argv"] for c in t.calls("reboot")] == [[]]


def test_a_new_kernel_reboots_when_asked(scene: Scene) -> None:
    new = scene.system(kernel="6.6.2")
    assert scene.deploy(new).reboot_required  # reboot never (the default): only said
    newer = scene.system(kernel="6.6.3")
    result = scene.deploy(newer, DeploySettings(**{**SETTINGS.__dict__, "reboot": "if-needed"}))
    assert (result.rebooted, result.reboot_required, scene.target.booted_system()) == (True, False, newer)


def test_two_deploys_at_once_the_second_is_refused(scene: Scene) -> None:
    new = scene.system()
    results: list[DeployResult] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        results.append(scene.deploy(new))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r.status for r in results) == ["deployed", "failed"]
    refused = next(r for r in results if r.status == "failed")
    assert refused.error is not None and refused.error.startswith("machine web1: another deploy holds it")
    assert len(scene.stc("test")) == 1


def test_an_unknown_host_key_is_refused(scene: Scene) -> None:
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake"
    request = DeployRequest("web1", scene.target.target, scene.old, host_key=other,
                            identity_file=scene.target.client_key)  # fmt: skip
    result = deploy_machine(request, SETTINGS)
    assert result.status == "failed" and result.error is not None and "no answer over ssh" in result.error
    assert scene.stc() == []


def test_under_systemd_the_switch_is_a_transient_unit(scene: Scene) -> None:
    scene.target.set_systemd(True)
    new = scene.system()
    result = scene.deploy(new)
    assert result.status == "deployed", result.error
    runs = scene.target.calls("systemd-run")
    units = [str(r["unit"]).rsplit("-", 1)[0] for r in runs]
    assert units == ["fleet-watchdog-web1.service", "fleet-switch-web1.service"] or units == [
        "fleet-watchdog-web1",
        "fleet-switch-web1",
    ]
    assert all(r["result"] == "started" and r["wait"] is False and r["collect"] is True for r in runs)
    assert [(c["action"], c["detached"]) for c in scene.stc()] == [("test", True), ("boot", False)]


def test_a_darwin_machine_activates_and_commits_the_profile(tmp_path: Path, target_hosts: FakeTargets,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("NIX_CONFIG", nix_env()["NIX_CONFIG"])
    flake = FakeFlake(tmp_path / "flake", {"mac": FakeSystem(darwin=True, version="1")})
    old = flake.build("mac")
    target = target_hosts.new("mac")
    target.install(old)
    flake.set("mac", version="2")
    new = flake.build("mac")
    request = DeployRequest("mac", target.target, new, "darwin", host_key=target.host_public_key,
                            identity_file=target.client_key)  # fmt: skip
    result = deploy_machine(request, SETTINGS)
    assert (result.status, result.previous, result.current) == ("deployed", old, new), result.error
    assert (target.current_system(), target.profile_system()) == (new, new)
    assert [c["toplevel"] for c in target.calls("activate")][-1:] == [new]
    assert os.environ["NIX_CONFIG"]


def test_build_on_the_target(scene: Scene) -> None:
    scene.flake.set("web1", version="24.11.9")
    drv, out = scene.flake.drv_path("web1"), scene.flake.out_path("web1")
    remote = DeploySettings(**{**SETTINGS.__dict__, "build_on": "remote"})
    result = scene.deploy(out, remote, drv_path=drv)
    assert (result.status, result.current) == ("deployed", out), result.error
    assert scene.target.current_system() == out
