"""The install harness (fleet_sdk.testing.targethost.installer): the nixos-anywhere shim, driven
directly with the argv fleet_sdk.tools.nixos_anywhere builds, installs NixOS on a debian FakeTarget
phase by phase over real ssh and nix, and refuses what a demanding reviewer would refuse.

Needs root, sshd (openssh-server), util-linux and nix (nix-bin): with CI=true a missing one fails
these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.testing import FakeFlake, FakeSystem, FakeTarget, FakeTargets, nix_env
from fleet_sdk.testing.targethost import (
    FACTER_REPORT,
    OS_RELEASE,
    keygen,
    missing_requirements,
    write_nixos_anywhere_shim,
)
from fleet_sdk.tools.nixos_anywhere import DiskKey, Install, argv

pytestmark = pytest.mark.integration

DISK_KEY_REMOTE = "/run/partitioning-secrets/disk/key"
HOST_KEY = "etc/ssh/ssh_host_ed25519_key"
SOPS_KEY = "var/lib/sops-nix/key.txt"


@pytest.fixture(autouse=True)
def _requirements() -> None:
    reasons = missing_requirements() + ([] if shutil.which("nix") else ["nix not found (Debian package nix-bin)"])
    if reasons:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{'; '.join(reasons)}; CI=true requires them")
        pytest.skip("; ".join(reasons))


@dataclass
class Operator:
    """The operator's side: the shim on PATH, its log, the flake and the files an install hands over."""

    tmp: Path
    client_key: Path
    flake: FakeFlake
    shim: Path
    log: Path
    extra: Path
    disk_key: Path
    secrets: dict[str, bytes]  # name -> bytes that must never reach the log

    def argv(self, target: FakeTarget | str, *phases: str, extra: bool = True, **changes: Any) -> list[str]:
        request = Install(
            flake=self.flake.ref,
            machine="web1",
            target=target if isinstance(target, str) else target.target,
            identity_file=changes.pop("identity_file", self.client_key),
            extra_files=self.extra if extra else None,
            disk_keys=(DiskKey(DISK_KEY_REMOTE, self.disk_key),),
            phases=phases,
            **changes,
        )
        return argv(request)

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        env = {**nix_env(), "PATH": f"{self.shim.parent}:{os.environ['PATH']}"}
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=90, check=False)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def assert_no_secret_in_log(self) -> None:
        text = self.log.read_bytes()
        for name, secret in self.secrets.items():
            assert secret not in text, f"{name} is in the log"


def make_extra(extra: Path) -> dict[str, bytes]:
    """An --extra-files folder as an install hands it over: 0700, folders 0755 (sops-nix's 0700),
    secrets 0600, public files 0644."""
    extra.mkdir(mode=0o700)
    extra.chmod(0o700)
    for folder, mode in [("etc", 0o755), ("etc/ssh", 0o755), ("var", 0o755), ("var/lib", 0o755)]:
        (extra / folder).mkdir()
        (extra / folder).chmod(mode)
    for folder, mode in [("var/lib/sops-nix", 0o700), ("var/lib/fleet", 0o755)]:
        (extra / folder).mkdir()
        (extra / folder).chmod(mode)
    keygen(extra / HOST_KEY)  # ssh-keygen: the private key 0600, the .pub 0644
    sops_key = b"AGE-SECRET-KEY-1" + secrets.token_hex(24).upper().encode() + b"\n"
    (extra / SOPS_KEY).write_bytes(sops_key)
    (extra / SOPS_KEY).chmod(0o600)
    (extra / "var/lib/fleet/install.json").write_text('{"machine": "web1"}\n')
    (extra / "var/lib/fleet/install.json").chmod(0o644)
    private = (extra / HOST_KEY).read_bytes()
    body = b"".join(private.splitlines()[1:-1])  # base64 lines of the private key
    return {"sops key": sops_key, "host key": private, "host key body": body[:40]}


@pytest.fixture
def operator(tmp_path: Path, target_hosts: FakeTargets) -> Operator:
    flake = FakeFlake(tmp_path / "flake", {"web1": FakeSystem(extra=str(tmp_path))})
    log = tmp_path / "nixos-anywhere.jsonl"
    shim = write_nixos_anywhere_shim(tmp_path / "bin", log, timeout=20)
    found = make_extra(tmp_path / "extra")
    disk_key = tmp_path / "keys" / "disk.key"
    disk_key.parent.mkdir(mode=0o700)
    found["disk key"] = secrets.token_hex(32).encode()
    disk_key.write_bytes(found["disk key"])
    disk_key.chmod(0o600)
    return Operator(tmp_path, target_hosts.client_key, flake, shim, log, tmp_path / "extra", disk_key, found)


def strict_ssh(host: FakeTarget, known_hosts: Path) -> subprocess.CompletedProcess[str]:
    argv = [
        "ssh",
        *("-F", "/dev/null", "-p", str(host.port), "-i", str(host.client_key), "-o", "IdentitiesOnly=yes"),
        *("-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"),
        *("root@127.0.0.1", "--", "true"),
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30, stdin=subprocess.DEVNULL)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_shim_installs_a_debian_target_phase_by_phase(operator: Operator, target_hosts: FakeTargets):
    t = target_hosts.new("web1", os_kind="debian", reboot_delay=0.05)
    machine_mnt = os.path.ismount("/mnt")
    old_known = operator.tmp / "known_hosts.old"
    old_known.write_text(t.known_hosts_line() + "\n")
    toplevel = operator.flake.out_path("web1")

    done = operator.run(operator.argv(t, "kexec"))
    assert done.returncode == 0, done.stderr
    assert (t.current_os(), t.boot) == ("nixos-installer", 2)
    assert t.path("/etc/os-release").read_text() == OS_RELEASE["nixos-installer"]
    assert strict_ssh(t, old_known).returncode == 0  # the installer kept the host key
    facter = t.ssh("nixos-facter")
    assert json.loads(facter.stdout) == FACTER_REPORT and t.calls("nixos-facter")[-1]["argv"] == []

    done = operator.run(operator.argv(t, "disko"))
    assert done.returncode == 0, done.stderr
    assert t.run("findmnt -n -o FSTYPE /mnt").stdout.strip() == "tmpfs"
    key = t.path(DISK_KEY_REMOTE)
    assert key.read_bytes() == operator.secrets["disk key"]
    assert (mode(key), mode(key.parent)) == (0o600, 0o700)  # umask 077
    assert os.path.ismount("/mnt") == machine_mnt  # this machine's /mnt: untouched

    done = operator.run(operator.argv(t, "install"))
    assert done.returncode == 0, done.stderr
    profile = t.run("readlink /mnt/nix/var/nix/profiles/$(readlink /mnt/nix/var/nix/profiles/system)")
    assert profile.stdout.strip() == toplevel
    assert t.run(f"test -d /mnt{toplevel} && stat -c %a /mnt /mnt/tmp /mnt/{SOPS_KEY}").stdout.split() == [
        *("755", "777", "600")  # chmod 755 /mnt after tar; mkdir -m777 /mnt/tmp; the modes of the extra files
    ]
    assert t.calls("nixos-install")[-1]["argv"] == ["--no-root-passwd", "--no-channel-copy", "--system", toplevel]
    assert t.current_system() is None and t.current_os() == "nixos-installer"  # nothing booted yet

    done = operator.run(operator.argv(t, "reboot"))
    assert done.returncode == 0, done.stderr
    t.wait_for_boot(3)
    assert (t.current_system(), t.booted_system(), t.profile_system()) == (toplevel, toplevel, toplevel)
    assert t.current_os() == "nixos" and t.path("/etc/os-release").read_text() == OS_RELEASE["nixos"]
    assert [c["result"] for c in t.calls("install-boot")] == ["ok"]
    sops_key = t.path(f"/{SOPS_KEY}")
    assert (sops_key.read_bytes(), mode(sops_key)) == (operator.secrets["sops key"], 0o600)
    assert (mode(t.path("/var/lib/sops-nix")), mode(t.path(f"/{HOST_KEY}"))) == (0o700, 0o600)

    # the new host key is the one from the extra files: strict checking accepts it, refuses the old
    new_key = (operator.extra / f"{HOST_KEY}.pub").read_text().split()
    new_known = operator.tmp / "known_hosts.new"
    new_known.write_text(f"[127.0.0.1]:{t.port} {new_key[0]} {new_key[1]}\n")
    assert strict_ssh(t, new_known).returncode == 0, strict_ssh(t, new_known).stderr
    refused = strict_ssh(t, old_known)
    assert refused.returncode == 255 and "Host key verification failed" in refused.stderr

    records = operator.records()
    assert [(r["phases"], r["result"], r["error"]) for r in records] == [
        ([phase], "ok", None) for phase in ("kexec", "disko", "install", "reboot")
    ]
    first = records[0]
    assert (first["target"], first["port"], first["identity_mode"]) == ("root@127.0.0.1", t.port, "600")
    assert first["argv"] == operator.argv(t, "kexec")[1:]
    digest = {name: hashlib.sha256(secret).hexdigest() for name, secret in operator.secrets.items()}
    size = len(operator.secrets["sops key"])
    assert first["extra_files"][SOPS_KEY] == {"mode": "600", "sha256": digest["sops key"], "size": size}
    assert first["extra_files"][HOST_KEY]["sha256"] == digest["host key"]
    assert first["extra_files"][f"{HOST_KEY}.pub"]["mode"] == "644"
    assert first["disk_keys"] == {DISK_KEY_REMOTE: {"mode": "600", "sha256": digest["disk key"]}}
    operator.assert_no_secret_in_log()

    t.stop()
    t.start()  # a start keeps what the target wrote itself
    assert (t.current_os(), t.current_system()) == ("nixos", toplevel)


def refusal_cases(op: Operator) -> list[tuple[str, list[str], str]]:
    """(name, argv, what stderr and the log's error must say), each against a closed port: the
    checks come before any ssh."""
    target = "root@127.0.0.1:9"
    base = op.argv(target, "kexec", "disko", "install", "reboot")
    loose_key = op.tmp / "loose_id"
    flake_at = base.index("--flake") + 1
    return [
        ("unknown phase", [*op.argv(target), "--phases", "kexec,format"], "Unknown phase: 'format'"),
        ("unknown option", [*base, "--kexec", "/x.tar"], "unknown option '--kexec'"),
        ("missing value", [*base, "--ssh-port"], "--ssh-port needs 1 value"),
        ("flake without #", [*base[:flake_at], op.flake.ref, *base[flake_at + 1 :]], "URI fragment"),
        ("relative disk key", [*base, "--disk-encryption-keys", "disk.key", str(op.disk_key)], "must be absolute"),
        ("identity 0644", op.argv(target, "kexec", identity_file=loose_key), f"{loose_key} has mode 0644"),
    ]


def test_refusals_exit_1_with_a_message_and_a_failed_log_line(operator: Operator):
    loose = operator.tmp / "loose_id"
    keygen(loose).chmod(0o644)
    extra = operator.extra
    for name, args, says in refusal_cases(operator):
        check_refused(operator, name, args, says)
    for name, path, change_mode, says in [
        ("extra file 0644", extra / SOPS_KEY, 0o644, f"{extra / SOPS_KEY} has mode 0644"),
        ("extra folder 0755", extra, 0o755, f"{extra} has mode 0755"),
        ("disk key 0640", operator.disk_key, 0o640, f"{operator.disk_key} has mode 0640"),
    ]:
        before = mode(path)
        path.chmod(change_mode)
        record = check_refused(operator, name, operator.argv("root@127.0.0.1:9", "install"), says)
        path.chmod(before)
        if path == extra / SOPS_KEY:  # what the shim saw, recorded before it refused
            assert record["extra_files"][SOPS_KEY]["mode"] == "644"
    (extra / "etc/link").symlink_to("/etc/passwd")
    check_refused(operator, "a symlink", operator.argv("root@127.0.0.1:9"), "must be a regular file, not a symlink")
    operator.assert_no_secret_in_log()
    assert all(r["result"] == "failed" for r in operator.records())


def check_refused(operator: Operator, name: str, args: list[str], says: str) -> dict[str, Any]:
    count = len(operator.records())
    done = operator.run(args)
    assert done.returncode == 1 and says in done.stderr, (name, done.stderr)
    records = operator.records()
    assert len(records) == count + 1, name
    assert records[-1]["result"] == "failed" and says in records[-1]["error"], (name, records[-1])
    return records[-1]


def test_disko_refuses_a_target_that_is_no_installer(operator: Operator, target_hosts: FakeTargets):
    t = target_hosts.new("deb", os_kind="debian")
    done = operator.run(operator.argv(t, "disko"))
    assert done.returncode == 1 and "no NixOS installer" in done.stderr, done.stderr
    assert t.run("findmnt -n /mnt", check=False).stdout == "" and not t.path(DISK_KEY_REMOTE).exists()
    assert operator.records()[-1]["result"] == "failed"


def test_on_an_installer_kexec_is_skipped_install_needs_disko_and_a_power_cycle_boots_it(
    operator: Operator, target_hosts: FakeTargets
):
    t = target_hosts.new("inst", os_kind="nixos-installer")
    done = operator.run(operator.argv(t, "install"))
    assert done.returncode == 1 and "run the disko phase first" in done.stderr, done.stderr
    assert t.calls("nixos-install") == [] and operator.records()[-1]["result"] == "failed"

    done = operator.run(operator.argv(t, "kexec", "disko"))
    assert done.returncode == 0, done.stderr
    assert t.boot == 1 and t.calls("reboot") == []  # skipped: it is an installer already
    assert t.run("findmnt -n -o FSTYPE /mnt").stdout.strip() == "tmpfs"
    assert operator.records()[-1]["phases"] == ["kexec", "disko"]

    done = operator.run(operator.argv(t, "install", extra=False))
    assert done.returncode == 0, done.stderr
    assert operator.records()[-1]["extra_files"] == {}
    host_key = t.host_public_key
    t.reboot()  # a power cycle boots the installation too
    toplevel = operator.flake.out_path("web1")
    assert (t.current_system(), t.current_os(), t.host_public_key) == (toplevel, "nixos", host_key)
    assert [c["result"] for c in t.calls("install-boot")] == ["ok"] and t.calls("reboot") == []
    operator.assert_no_secret_in_log()
