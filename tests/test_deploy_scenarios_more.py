"""More acceptance scenarios of the deploy engine against target hosts (issue 13; the first ones are
in test_deploy_scenarios.py, whose scene and settings these reuse): a nix-darwin machine reached as
an admin user through sudo, a crash inside the activation window, eight machines at once, and a
listener lost during the confirmation. Each reads the outcome from the target's state and records;
the crash has its negative control (a naive deploy boots the new system after the same crash)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from fleet_sdk.deploy import DeployRequest, DeployResult, deploy_machine, deploy_machines
from fleet_sdk.deploy.model import MachineClass
from fleet_sdk.testing import FakeFlake, FakeSystem, FakeTarget, FakeTargets, Generation, nix_env
from fleet_sdk.testing.targethost import missing_requirements

from . import test_deploy_scenarios as scenarios
from .test_deploy_scenarios import SETTINGS, Scene

scene = scenarios.scene  # the fixture: web1 installed with its first system

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_requirements()), reason="; ".join(missing_requirements())),
]


def request(
    target: FakeTarget, machine: str, system: str, user: str = "root", machine_class: MachineClass = "nixos"
) -> DeployRequest:
    return DeployRequest(machine, target.user_target(user), system, machine_class,
                         host_key=target.host_public_key, identity_file=target.client_key)  # fmt: skip


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def argv_text(record: dict[str, object]) -> str:
    argv = record["argv"]
    assert isinstance(argv, list)
    return " ".join(map(str, argv))


# ---- 1. nix-darwin as an admin user, through sudo ----


def test_a_darwin_machine_deployed_as_an_admin_activates_through_sudo(
    tmp_path: Path, target_hosts: FakeTargets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIX_CONFIG", nix_env()["NIX_CONFIG"])
    flake = FakeFlake(tmp_path / "flake", {"mac": FakeSystem(darwin=True, version="1")})
    old = flake.build("mac")
    t = target_hosts.new("mac", users=("crs58", "guest"), sudoers=("crs58",))
    t.install(old)
    flake.set("mac", version="2")
    new = flake.build("mac")

    result = deploy_machine(request(t, "mac", new, "crs58", "darwin"), SETTINGS)
    assert (result.status, result.previous, result.current, result.generation) == ("deployed", old, new, 2), (
        result.error
    )
    assert (t.current_system(), t.profile_system()) == (new, new)
    assert t.profile_generations() == [Generation(1, old), Generation(2, new)]
    assert t.path(new).stat().st_uid == 0  # copied as crs58, added to the store by its daemon
    # every command needing root went through `sudo -n`, which ran it as root for crs58
    sudo = t.calls("sudo")
    assert sudo and {(c["user"], c["argv"][0], c["result"]) for c in sudo} == {("crs58", "-n", "ran")}
    assert [(a["toplevel"], a["uid"], a["detached"]) for a in t.calls("activate")] == [(new, 0, True)]
    # the order on the target: activate, then the running system read, then the profile set
    texts = [argv_text(c) for c in sudo]
    activated = next(i for i, s in enumerate(texts) if f"{new}/activate" in s)
    committed = next(i for i, s in enumerate(texts) if "nix-env" in s and new in s)
    assert any("/run/current-system" in s for s in texts[activated + 1 : committed])
    assert t.calls("activate")[0]["time"] < sudo[committed]["time"]

    # a user without passwordless sudo: refused at the first command, naming the machine; nothing
    # is copied or activated
    flake.set("mac", version="3")
    newer = flake.build("mac")
    refused = deploy_machine(request(t, "mac", newer, "guest", "darwin"), SETTINGS)
    assert refused.status == "failed" and refused.error is not None
    assert refused.error.startswith("machine mac: guest on 127.0.0.1 needs a password for sudo")
    assert "NOPASSWD" in refused.error
    guest = [c for c in t.calls("sudo") if c["user"] == "guest"]
    assert [(c["argv"][0], c["result"]) for c in guest] == [("-n", "password-required")]
    assert len(t.calls("activate")) == 1 and not t.path(newer).exists()
    assert (t.current_system(), t.profile_system()) == (new, new)


# ---- 2. a crash inside the window ----


def crash_during(t: FakeTarget, system: str) -> threading.Thread:
    """Reboots `t` once `system` is running from a switch-to-configuration still under way."""

    def crash() -> None:
        wait_until(lambda: any(c.get("action") == "test" and c["toplevel"] == system
                               for c in t.calls("switch-to-configuration")), what="the switch")  # fmt: skip
        wait_until(lambda: t.current_system() == system, what="the activation")
        t.reboot()

    thread = threading.Thread(target=crash, name="crash")
    thread.start()
    return thread


def test_a_crash_inside_the_window_boots_the_previous_system(scene: Scene) -> None:
    t, old, boots = scene.target, scene.old, scene.target.boot
    bad = scene.system(behaviour="hang")
    crash = crash_during(t, bad)
    result = scene.deploy(bad)
    crash.join()
    assert t.boot == boots + 1
    assert (t.booted_system(), t.profile_system(), t.current_system()) == (old, old, old)
    assert t.profile_generations() == [Generation(1, old)]
    assert (result.status, result.rolled_back, result.current) == ("rolled-back", True, old), result.error
    assert result.error is not None and result.error.startswith("machine web1: ")
    assert result.error.endswith(f"rolled back to {old}")
    # the new system was running when the machine went down; nothing made it the boot default
    assert [(c["action"], c["toplevel"]) for c in scene.stc() if c["boot"] == boots] == [("test", bad)]
    assert ("boot", bad) not in [(c["action"], c["toplevel"]) for c in scene.stc()]

    # negative control: a deploy that sets the profile first boots the new, hanging system
    assert scene.naive(bad, timeout=3) is None
    assert (t.current_system(), t.profile_system()) == (bad, bad)
    t.reboot()
    assert (t.booted_system(), t.current_system()) == (bad, bad)


# ---- 3. eight machines at once ----

# roomier deadlines: eight deploys share two cores here, and this scenario measures, it injects no fault
PARALLEL = replace(SETTINGS, switch_timeout=20, confirm_timeout=20, watchdog_seconds=60, lock_seconds=120)


def test_eight_machines_deploy_in_parallel(
    tmp_path: Path, target_hosts: FakeTargets, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NIX_CONFIG", nix_env()["NIX_CONFIG"])
    names = [f"m{i}" for i in range(1, 9)]
    flake = FakeFlake(tmp_path / "flake", {n: FakeSystem(version="1") for n in names})
    installed = flake.build_all()
    targets = dict(zip(names, target_hosts(8), strict=True))
    for n, t in targets.items():
        t.install(installed[n])

    def generation(version: str) -> dict[str, str]:
        for n in names:
            flake.set(n, version=version)
        return flake.build_all()

    second, third = generation("2"), generation("3")
    start = time.monotonic()
    one_by_one = [deploy_machine(request(targets[n], n, second[n]), PARALLEL) for n in names]
    serial = time.monotonic() - start
    assert [r.status for r in one_by_one] == ["deployed"] * 8, [r.error for r in one_by_one]

    start = time.monotonic()
    results = deploy_machines([request(targets[n], n, third[n]) for n in names], PARALLEL, jobs=8)
    parallel = time.monotonic() - start
    assert [(r.machine, r.status, r.current) for r in results] == [(n, "deployed", third[n]) for n in names], [
        r.error for r in results
    ]
    for n, t in targets.items():
        assert (t.current_system(), t.profile_system()) == (third[n], third[n])
        assert [g.path for g in t.profile_generations()] == [installed[n], second[n], third[n]]
    with capsys.disabled():
        print(f"\n8 deploys: {serial:.2f} s one by one, {parallel:.2f} s with jobs=8 ({parallel / serial:.2f})")
    assert parallel <= 0.5 * serial, (serial, parallel)


# ---- 4. the listener lost during the confirmation ----


def listener_lost_at_confirmation(t: FakeTarget, down: float | None) -> Callable[[str, str], None]:
    """A progress callback: when the confirmation begins (the new system runs and answered), sshd's
    listener goes; it comes back `down` s later (None: never, unless the system restarts it)."""

    def progress(machine: str, message: str) -> None:
        if message.startswith("confirming"):
            t.kill_listener()
            if down is not None:
                threading.Timer(down, t.restart_listener).start()

    return progress


def deploy_with(scene: Scene, system: str, progress: Callable[[str, str], None]) -> DeployResult:
    return deploy_machine(request(scene.target, "web1", system), SETTINGS, progress=progress)


def test_a_listener_lost_during_the_confirmation_is_reconnected_until_the_deadline(scene: Scene) -> None:
    t, old = scene.target, scene.old
    new = scene.system()
    listening = f"Server listening on 127.0.0.1 port {t.port}."
    started = t.path("/var/log/sshd.log").read_text().count(listening)
    start = time.monotonic()
    result = deploy_with(scene, new, listener_lost_at_confirmation(t, down=0.8))
    assert (result.status, result.current, result.generation) == ("deployed", new, 2), result.error
    assert time.monotonic() - start > 0.8  # it waited for the listener
    assert (t.current_system(), t.profile_system()) == (new, new)
    assert t.path("/var/log/sshd.log").read_text().count(listening) == started + 1  # restarted once

    # past the deadline (confirm_timeout 2 s) the engine cannot tell: the watchdog on the machine
    # restores the previous system (whose switch brings sshd back) and the engine reports it
    newer = scene.system()
    lost = deploy_with(scene, newer, listener_lost_at_confirmation(t, down=None))
    assert (lost.status, lost.rolled_back, lost.current) == ("rolled-back", True, new), lost.error
    assert lost.error is not None and "no new ssh connection within 2 s" in lost.error
    assert "the watchdog restored" in lost.error
    assert (t.current_system(), t.profile_system()) == (new, new)
    assert [g.path for g in t.profile_generations()] == [old, new]
    assert subprocess.run(t.ssh_argv("true"), check=False, capture_output=True, timeout=20).returncode == 0
