"""The target-host harness (fleet_sdk.testing.targethost, fakesystem) against the real programs:
sshd and ssh with strict host keys, nix copy into the target's own store, the fake
switch-to-configuration, the listener faults, reboots, and nothing left running after stop.

Needs root, sshd (openssh-server), util-linux and nix (nix-bin): with CI=true a missing one fails
these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fleet_sdk.errors import FleetError
from fleet_sdk.targets import TargetHost
from fleet_sdk.testing import FakeFlake, FakeSystem, FakeTarget, FakeTargets, nix_env
from fleet_sdk.testing.targethost import missing_requirements

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _requirements() -> None:
    reasons = missing_requirements() + ([] if shutil.which("nix") else ["nix not found (Debian package nix-bin)"])
    if reasons:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{'; '.join(reasons)}; CI=true requires them")
        pytest.skip("; ".join(reasons))


@pytest.fixture
def flake(tmp_path: Path) -> FakeFlake:
    # `extra` makes this test's closures its own, so no earlier run's store paths are reused
    return FakeFlake(tmp_path / "flake", {"web1": FakeSystem(extra=str(tmp_path))})


def ssh(host: FakeTarget, known_hosts: Path, command: str) -> subprocess.CompletedProcess[str]:
    """ssh as deploy code runs it: strict checking against a known_hosts file of its own."""
    argv = [
        "ssh",
        *("-F", "/dev/null", "-p", str(host.port), "-i", str(host.client_key), "-o", "IdentitiesOnly=yes"),
        *("-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"),
        *("root@127.0.0.1", "--", command),
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30, stdin=subprocess.DEVNULL)


def copy(host: FakeTarget, path: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**nix_env(), "NIX_SSHOPTS": host.nix_sshopts}
    argv = ["nix", "copy", *extra, "--to", "ssh-ng://root@127.0.0.1", path]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)


def stc(host: FakeTarget, path: str, action: str, prefix: str = "") -> subprocess.CompletedProcess[str]:
    return host.ssh(f"{prefix}{path}/bin/switch-to-configuration {action}", check=False)


def test_two_targets_start_at_once_each_with_its_own_key_and_store(target_hosts: FakeTargets, tmp_path: Path):
    began = time.monotonic()
    a, b = target_hosts(2)
    assert time.monotonic() - began < 5  # about 0.2 s here; the bound only catches a hang
    assert a.port != b.port
    assert a.host_public_key != b.host_public_key
    assert a.known_hosts_line() == f"[127.0.0.1]:{a.port} {a.host_public_key}"
    assert TargetHost.parse(a.target) == TargetHost("root", "127.0.0.1", a.port)

    known = tmp_path / "known_hosts"
    known.write_text(a.known_hosts_line() + "\n" + b.known_hosts_line() + "\n")
    for host in (a, b):
        done = ssh(host, known, ". /etc/os-release; echo $ID; id -u; ls -A /nix/store 2>/dev/null | wc -l")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["nixos", "0", "0"]  # an empty store of its own

    # strict checking holds: b's key under a's address is a changed host key
    known.write_text(f"[127.0.0.1]:{a.port} {b.host_public_key}\n")
    refused = ssh(a, known, "true")
    assert refused.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr


def test_nix_copy_set_profile_and_switch_over_ssh(target_hosts: FakeTargets, flake: FakeFlake):
    host = target_hosts.new("web1")
    path = flake.build("web1")
    assert flake.out_path("web1") == path

    unsigned = copy(host, path)
    assert unsigned.returncode != 0
    assert "lacks a valid signature" in unsigned.stderr  # ssh-ng checks signatures (reference §6)
    done = copy(host, path, "--no-check-sigs")
    assert done.returncode == 0, done.stderr
    assert host.path(path).joinpath("nixos-version").read_text() == "24.11.20250101.fake"

    host.ssh(f"nix-env -p /nix/var/nix/profiles/system --set {path}")
    assert [tuple(g) for g in host.profile_generations()] == [(1, path)]
    assert host.profile_system() == path

    switched = stc(host, path, "test", prefix="NIXOS_INSTALL_BOOTLOADER=0 ")
    assert switched.returncode == 0, switched.stderr
    assert host.current_system() == path
    assert host.booted_system() is None  # nothing booted it yet
    [call] = host.calls("switch-to-configuration")
    assert call["argv"] == ["test"]
    assert call["toplevel"] == path
    assert call["uid"] == 0
    assert call["boot"] == 1
    assert call["lock"] == "acquired"
    assert call["NIXOS_INSTALL_BOOTLOADER"] == "0"
    assert call["NIXOS_NO_CHECK"] is None
    assert call["detached"] is False  # run in the ssh session itself


def test_a_switch_started_with_setsid_is_detached(target_hosts: FakeTargets, flake: FakeFlake):
    host = target_hosts.new()
    path = flake.build("web1")
    host.install(path)
    host.ssh(f"setsid -f {path}/bin/switch-to-configuration test < /dev/null > /dev/null 2>&1")
    deadline = time.monotonic() + 10
    while not host.calls("switch-to-configuration"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert host.calls("switch-to-configuration")[0]["detached"] is True


def test_kill_listener_refuses_new_connections_while_a_session_lives(target_hosts: FakeTargets):
    host = target_hosts.new()
    session = subprocess.Popen(
        host.ssh_argv('echo ready; read line; echo "alive $line"'),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert session.stdout is not None
        assert session.stdout.readline() == "ready\n"
        host.kill_listener()
        refused = host.ssh("true", check=False)
        assert refused.returncode == 255
        assert "Connection refused" in refused.stderr
        out, _ = session.communicate("still\n", timeout=10)
        assert out == "alive still\n"
        assert session.returncode == 0
    finally:
        session.kill()
        session.wait()
    host.restart_listener()
    assert host.ssh("echo back").stdout == "back\n"


def test_reboot_boots_the_system_profile(target_hosts: FakeTargets, flake: FakeFlake):
    host = target_hosts.new()
    first = flake.build("web1")
    host.install(first)  # boots into it
    assert host.boot == 2
    assert host.booted_system() == host.current_system() == first

    flake.set("web1", version="24.11.2", kernel="6.6.2")
    second = flake.build("web1")
    assert copy(host, second, "--no-check-sigs").returncode == 0
    assert stc(host, second, "test").returncode == 0
    host.run("touch /run/scratch")
    assert host.current_system() == second
    assert host.booted_system() == first  # a kernel change waits for a reboot
    assert host.readlink("/run/booted-system/kernel") != host.readlink("/run/current-system/kernel")

    host.reboot()  # the profile still says `first`: `test` does not touch it
    assert host.boot == 3
    assert host.booted_system() == host.current_system() == first
    assert host.run("ls /run/scratch", check=False).returncode != 0  # /run starts empty

    host.ssh(f"nix-env -p /nix/var/nix/profiles/system --set {second}")
    host.reboot()
    assert host.booted_system() == host.current_system() == second
    assert [g.path for g in host.profile_generations()] == [first, second]
    assert host.ssh("true").returncode == 0  # the same host key and port after each boot


def test_the_reboot_shim_restarts_the_target(target_hosts: FakeTargets, flake: FakeFlake):
    host = target_hosts.new(reboot_delay=0.1)
    path = flake.build("web1")
    host.install(path)
    boot = host.boot
    done = host.ssh("reboot", check=False)
    assert done.returncode == 255  # the connection ends with the machine
    host.wait_for_boot(boot + 1)
    assert host.booted_system() == path
    [call] = host.calls("reboot")
    assert call["argv"] == []
    assert call["boot"] == boot


def test_stop_leaves_no_process_behind(target_hosts: FakeTargets):
    host = target_hosts.new()
    host.ssh("setsid -f sleep 1000 < /dev/null > /dev/null 2>&1")  # a detached job, as a watchdog is
    session = subprocess.Popen(host.ssh_argv("sleep 1000"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while len(host.processes()) < 5:  # init, listener, the session's sshd and sleep, the job
            assert time.monotonic() < deadline, host.processes()
            time.sleep(0.02)
        pids = host.processes()
        namespace = os.readlink(f"/proc/{pids[0]}/ns/mnt")
        host.stop()
        assert session.wait(10) == 255  # the connection ended with the target
    finally:
        session.kill()
        session.wait()
    left = []
    for pid in pids:
        try:
            if os.readlink(f"/proc/{pid}/ns/mnt") == namespace:
                left.append(pid)
        except FileNotFoundError:
            pass
    assert left == []
    assert host.processes() == []
    assert not host.running
    with pytest.raises(FleetError, match="not running"):
        host.run("true")


def test_targets_are_stopped_when_the_test_fails(tmp_path: Path):
    hosts = FakeTargets(tmp_path)
    with pytest.raises(RuntimeError):
        try:
            [host] = hosts(1)
            raise RuntimeError("a failing test")
        finally:
            hosts.stop_all()
    assert host.processes() == [] and not host.running


@pytest.mark.parametrize(
    ("behaviour", "code", "switched", "message"),
    [
        ("ok", 0, True, "activating the configuration"),
        ("exit2", 2, True, "Activation script snippet"),
        ("exit4", 4, True, "the following units failed"),
        ("inhibit", 1, False, "Pre-switch checks failed"),
    ],
)
def test_switch_behaviours(
    target_hosts: FakeTargets, flake: FakeFlake, behaviour: str, code: int, switched: bool, message: str
):
    host = target_hosts.new()
    good = flake.build("web1")
    host.install(good)
    flake.set("web1", behaviour=behaviour)
    path = flake.build("web1")
    assert copy(host, path, "--no-check-sigs").returncode == 0
    done = stc(host, path, "test")
    assert done.returncode == code
    assert message in done.stderr
    assert host.current_system() == (path if switched else good)
    assert stc(host, path, "boot").returncode == 0  # boot runs no checks and activates nothing
    if behaviour == "inhibit":
        assert stc(host, path, "test", prefix="NIXOS_NO_CHECK=1 ").returncode == 0
        assert host.current_system() == path


def test_kill_ssh_behaviour_loses_the_listener_and_a_good_generation_brings_it_back(
    target_hosts: FakeTargets, flake: FakeFlake
):
    host = target_hosts.new()
    good = flake.build("web1")
    flake.set("web1", behaviour="kill-ssh")
    bad = flake.build("web1")
    host.install(good)
    assert copy(host, bad, "--no-check-sigs").returncode == 0
    assert stc(host, bad, "switch").returncode == 0
    assert host.current_system() == bad
    assert host.ssh("true", check=False).returncode == 255
    # a watchdog on the target rolls back: the good generation's switch starts sshd again
    host.run(f"{good}/bin/switch-to-configuration switch")
    assert host.current_system() == good
    assert host.ssh("true").returncode == 0


def test_a_hanging_switch_holds_the_lock(target_hosts: FakeTargets, flake: FakeFlake):
    host = target_hosts.new()
    flake.set("web1", behaviour="hang")
    path = flake.build("web1")
    host.install(path)
    with pytest.raises(subprocess.TimeoutExpired):
        host.ssh(f"{path}/bin/switch-to-configuration test", timeout=1)
    busy = host.run(f"{path}/bin/switch-to-configuration test", check=False)
    assert busy.returncode == 1
    assert "Could not acquire lock" in busy.stderr
    assert [c["lock"] for c in host.calls("switch-to-configuration")] == ["acquired", "busy"]


def test_systemd_run_shim(target_hosts: FakeTargets, flake: FakeFlake):
    host = target_hosts.new()
    path = flake.build("web1")
    host.install(path)
    unit = (
        "systemd-run --pipe --wait --quiet --collect --service-type=exec --unit=nixos-rebuild-switch-to-configuration"
    )
    absent = host.ssh(f"{unit} {path}/bin/switch-to-configuration test", check=False)
    assert absent.returncode == 1
    assert "has not been booted with systemd" in absent.stderr

    host.set_systemd(True)
    done = host.ssh(f"{unit} -E NIXOS_INSTALL_BOOTLOADER=1 -E LOCALE_ARCHIVE {path}/bin/switch-to-configuration test")
    assert done.returncode == 0, done.stderr
    call = host.calls("switch-to-configuration")[-1]
    assert call["detached"] is True  # a unit of its own, not the ssh session
    assert call["NIXOS_INSTALL_BOOTLOADER"] == "1"

    # a failed unit without --collect stays loaded, and refuses the next one until reset-failed
    failing = "systemd-run --wait --unit=stuck sh -c 'exit 3'"
    assert host.ssh(failing, check=False).returncode == 3
    again = host.ssh(failing, check=False)
    assert again.returncode == 1
    assert "Unit stuck.service was already loaded" in again.stderr
    host.ssh("systemctl reset-failed stuck")
    assert host.ssh(failing, check=False).returncode == 3

    # --pipe relays stdin and stdout; without --wait the unit runs on after systemd-run returns
    assert host.ssh("systemd-run --pipe --quiet tr a-z A-Z", input="piped\n").stdout == "PIPED\n"
    host.ssh("systemd-run --unit=slow sh -c 'sleep 0.3; echo done > /tmp/slow'")
    assert host.ssh("systemctl is-active slow").stdout == "active\n"
    assert not host.path("/tmp/slow").exists()
    host.ssh("sleep 1")
    assert host.path("/tmp/slow").read_text() == "done\n"
    assert host.ssh("systemctl is-active slow", check=False).stdout == "inactive\n"
    results = [c.get("result") for c in host.calls("systemd-run")]
    assert results == ["no-systemd", "started", "started", "already-loaded", "started", "started", "started"]


def test_records_keep_any_argument(target_hosts: FakeTargets):
    host = target_hosts.new(systemd=True)
    odd = 'a "quoted" back\\slash\ttab\nnewline \x01 ünï'
    host.run(["systemd-run", "--wait", "--collect", "--quiet", "true", odd])
    assert host.calls("systemd-run")[0]["argv"] == ["--wait", "--collect", "--quiet", "true", odd]


def test_os_release_paths_and_a_login_user(target_hosts: FakeTargets, flake: FakeFlake):
    host = target_hosts.new(users=["admin"], os_kind="nixos-installer")
    assert "VARIANT_ID=installer" in host.ssh("cat /etc/os-release").stdout
    host.set_os("debian")
    assert "ID=debian" in host.ssh("cat /etc/os-release").stdout
    assert host.path("/etc/os-release").read_text() == host.ssh("cat /etc/os-release").stdout
    host.ssh("echo hi > /tmp/x")
    assert host.path("/tmp/x").read_text() == "hi\n"
    assert host.path("/run/fleet-harness/boot").read_text() == "1\n"
    with pytest.raises(ValueError, match="machine's own"):
        host.path("/usr/bin/nix")

    # a darwin-like target: a non-root login user, whose activation is refused
    flake.set("mac", darwin=True)
    mac = flake.build("mac")
    assert flake.attr("mac") == "darwinConfigurations.mac.system"
    assert copy(host, mac, "--no-check-sigs").returncode == 0
    user = host.ssh(f"id -un; {mac}/activate", user="admin", check=False)
    assert user.stdout == "admin\n"
    assert user.returncode == 2
    assert host.ssh(f"{mac}/sw/bin/darwin-rebuild activate").returncode == 0
    assert host.current_system() == mac
    assert [c["program"] for c in host.calls()] == ["activate", "darwin-rebuild", "activate"]


def test_fake_flake_evaluates_without_building(flake: FakeFlake):
    drv = flake.drv_path("web1")
    out = flake.out_path("web1")
    assert drv.endswith(".drv") and out.startswith("/nix/store/")
    assert not Path(out).exists()  # evaluation wrote the .drv only
    assert flake.build("web1") == out
    kernel = os.readlink(Path(out) / "kernel")
    flake.set("web1", kernel="6.6.9")
    bumped = flake.build("web1")
    assert bumped != out and os.readlink(Path(bumped) / "kernel") != kernel
    with pytest.raises(ValueError, match="behaviour"):
        FakeSystem(behaviour="explode")  # type: ignore[arg-type]


def test_sudo_shim_and_the_store_daemon_of_login_users(target_hosts: FakeTargets, flake: FakeFlake):
    host = target_hosts.new(users=["crs58", "guest"], sudoers=["crs58"])
    ran = host.ssh("sudo -n sh -c 'id -u; echo $PATH $HOME $SUDO_USER'", user="crs58")
    assert ran.stdout == "0\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /root crs58\n"
    asked = host.ssh("sudo -n id", user="guest", check=False)
    assert (asked.returncode, asked.stderr) == (1, "sudo: a password is required\n")
    no_n = host.ssh("sudo true", user="guest", check=False)
    assert no_n.returncode == 1 and no_n.stderr.startswith("sudo: a terminal is required to read the password")
    assert host.ssh("sudo -n id -u").stdout == "0\n"  # root
    assert host.ssh("sudo -n no-such-program", user="crs58", check=False).stderr == (
        "sudo: no-such-program: command not found\n"
    )
    # the shim's decision is the system's too: only the group may run the setuid helper
    helper = host.ssh("/usr/local/bin/.fleet-sudo-helper --reuid=0 id", user="guest", check=False)
    assert helper.returncode == 126 and "Permission denied" in helper.stderr
    records = [(c["user"], c["uid"] != 0, c["result"], c["argv"][0]) for c in host.calls("sudo")]
    assert records == [
        ("crs58", True, "ran", "-n"),
        ("guest", True, "password-required", "-n"),
        ("guest", True, "password-required", "true"),
        ("root", False, "ran", "-n"),
        ("crs58", True, "command-not-found", "-n"),
    ]
    with pytest.raises(ValueError, match="not among the login users"):
        FakeTarget(host.root.parent / "other", users=["a"], sudoers=["b"])

    # login users reach the store through the daemon, which trusts the sudoers only
    path = flake.build("web1")
    env = {**nix_env(), "NIX_SSHOPTS": host.nix_sshopts}
    for user, ok in (("guest", False), ("crs58", True)):
        to = f"ssh-ng://{user}@127.0.0.1?remote-program=bash%20-lc%20%27exec%20nix-daemon%20--stdio%27"
        argv = ["nix", "copy", "--no-check-sigs", "--to", to, path]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)
        assert (done.returncode == 0) is ok, done.stderr
        assert ok or "lacks a valid signature" in done.stderr, done.stderr
    assert host.path(path).is_dir() and host.path(path).stat().st_uid == 0
