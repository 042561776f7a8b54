"""fleet_sdk.deploy's commands, computed purely: golden argv tables for what no fake target can check (the systemd-run
line, the nix copy URL, the tar upload command, the watchdog line), the facts, the secrets archive and
the settings' rules."""

from __future__ import annotations

import io
import shlex
import tarfile
from pathlib import Path

import pytest

from fleet_sdk.deploy import DeployRequest, DeploySettings, Facts, SecretFile, deploy_commands, scripts
from fleet_sdk.deploy.commands import needs_reboot, preflight_argv
from fleet_sdk.deploy.remote import Remote, known_hosts_line, ssh_options
from fleet_sdk.deploy.secrets import MARKER, archive, check_paths, digest
from fleet_sdk.errors import ConfigError, DeployError
from fleet_sdk.targets import TargetHost
from fleet_sdk.testing import RecordingRunner

OLD = "/nix/store/aaaa-nixos-system-web1-24.05"
NEW = "/nix/store/bbbb-nixos-system-web1-24.11"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyHostKeyHostKeyHostKeyHostKey0000 root@web1"
KH = Path("/dev/shm/fleet-deploy-1-x/known_hosts")
SSH = [
    "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=yes",
    "-o", f"UserKnownHostsFile={KH}", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no",
    "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ServerAliveInterval=10",
    "-o", "ServerAliveCountMax=3",
]  # fmt: skip
SECRETS = {
    "/var/lib/sops-nix/key.txt": SecretFile(b"AGE-SECRET-KEY-1SECRETSECRET\n", "root", "root", 0o600),
    "/var/lib/sops-nix/activation/per-machine/web1/pw/hash": SecretFile(b"$y$hash", "alice", "users", 0o440),
}


def request(**kw: object) -> DeployRequest:
    fields: dict[str, object] = {"machine": "web1", "target": "root@web1.zt", "system": NEW, "host_key": KEY}
    return DeployRequest(**{**fields, **kw})  # type: ignore[arg-type]


def remote(target: str = "root@web1.zt", settings: DeploySettings | None = None) -> Remote:
    return Remote.for_request(RecordingRunner(), request(target=target), settings or DeploySettings(), KH)


FACTS = Facts(current=OLD, profile=OLD, generation=7, launcher="systemd")


def test_the_switch_runs_as_a_transient_unit_under_systemd() -> None:
    commands = deploy_commands(request(), DeploySettings(), FACTS, "t0k3n")
    assert remote().argv(commands.switch) == [
        *SSH, "--", "root@web1.zt",
        "systemd-run", "--unit=fleet-switch-web1-t0k3n", "--collect", "--no-ask-password", "--quiet",
        "--service-type=exec", "-E", "LOCALE_ARCHIVE", "--",
        "/bin/sh", "-c", shlex.quote(scripts.WRAPPER), "sh", "/run/fleet-deploy/t0k3n/switch",
        "/run/fleet-deploy/t0k3n/canary", f"{NEW}/bin/switch-to-configuration", "test",
    ]  # fmt: skip


def test_without_systemd_the_switch_runs_in_a_new_session() -> None:
    commands = deploy_commands(request(), DeploySettings(), Facts(current=OLD, launcher="setsid"), "t0k3n")
    assert commands.switch == (
        "sh", "-c", scripts.BACKGROUND, "sh", "setsid", "/bin/sh", "-c", scripts.WRAPPER, "sh",
        "/run/fleet-deploy/t0k3n/switch", "/run/fleet-deploy/t0k3n/canary", f"{NEW}/bin/switch-to-configuration",
        "test",
    )  # fmt: skip
    assert commands.rollback == (
        "sh", "-c", scripts.BACKGROUND, "sh", "setsid", "/bin/sh", "-c", scripts.WRAPPER, "sh",
        "/run/fleet-deploy/t0k3n/rollback", "-", f"{OLD}/bin/switch-to-configuration", "test",
    )  # fmt: skip


def test_the_watchdog_restores_the_previous_system_with_test_not_the_profile() -> None:
    commands = deploy_commands(request(), DeploySettings(watchdog_seconds=900), FACTS, "t0k3n")
    assert commands.arm == (
        "sh", "-c", scripts.ARM, "sh", "/run/fleet-deploy/t0k3n",
        "systemd-run", "--unit=fleet-watchdog-web1-t0k3n", "--collect", "--no-ask-password", "--quiet", "--",
        "/bin/sh", "-c", scripts.WATCHDOG, "sh", "/run/fleet-deploy/t0k3n", "900", "/run/fleet-deploy", "t0k3n",
        f"{OLD}/bin/switch-to-configuration", "test",
    )  # fmt: skip
    assert "nix-env" not in scripts.WATCHDOG and "boot" not in scripts.WATCHDOG
    setsid = deploy_commands(request(), DeploySettings(), Facts(current=OLD, launcher="setsid"), "t0k3n")
    assert setsid.arm[5:9] == ("setsid", "/bin/sh", "-c", scripts.WATCHDOG)
    assert commands.disarm == ("rm", "/run/fleet-deploy/t0k3n/canary")


def test_the_commit_sets_the_profile_and_boot_entry_after_confirmation() -> None:
    commands = deploy_commands(request(), DeploySettings(), FACTS, "t0k3n")
    assert commands.commit == ("sh", "-c", scripts.COMMIT_NIXOS, "sh", NEW)
    assert 'nix-env -p /nix/var/nix/profiles/system --set "$1"' in scripts.COMMIT_NIXOS
    assert '"$1/bin/switch-to-configuration" boot' in scripts.COMMIT_NIXOS
    assert commands.check == ("sh", "-c", scripts.CHECK_NIXOS, "sh", NEW)
    assert 'test -f "$1/nixos-version" && test -x "$1/bin/switch-to-configuration"' in scripts.CHECK_NIXOS


def test_the_secrets_upload_is_a_tar_on_stdin_extracted_beside_and_renamed() -> None:
    commands = deploy_commands(request(secrets=SECRETS), DeploySettings(), FACTS, "t0k3n")
    assert commands.upload is not None
    assert remote().argv(commands.upload) == [
        *SSH, "--", "root@web1.zt", "sh", "-c", shlex.quote(scripts.UPLOAD), "sh", "/var/lib/sops-nix",
    ]  # fmt: skip
    assert 'tar -x -p -f - -C "$new"' in scripts.UPLOAD
    assert scripts.UPLOAD.index('mv "$root" "$old"') < scripts.UPLOAD.index('mv "$new" "$root"')
    assert commands.digest == digest(SECRETS)


def test_the_preflight_takes_the_lock_and_reads_the_facts() -> None:
    argv = preflight_argv(DeploySettings(lock_seconds=7200), "t0k3n", "ops:42")
    assert argv == ("sh", "-c", scripts.PREFLIGHT, "sh", "/run/fleet-deploy", "t0k3n", "7200", "ops:42",
                    "/var/lib/sops-nix")  # fmt: skip
    assert 'mkdir "$lock"' in scripts.PREFLIGHT and "switch-to-configuration.lock" in scripts.PREFLIGHT


def test_a_non_root_user_runs_through_sudo_without_a_password_prompt() -> None:
    commands = deploy_commands(request(target="crs58@stibnite.zt", machine_class="darwin"), DeploySettings(),
                       Facts(current=OLD, launcher="nohup"), "t0k3n")  # fmt: skip
    argv = remote("crs58@stibnite.zt").argv(commands.commit)
    assert argv[len(SSH) :] == ["--", "crs58@stibnite.zt", "sudo", "-n", "sh", "-c", shlex.quote(scripts.COMMIT_DARWIN),
                                "sh", NEW]  # fmt: skip
    assert "boot" not in scripts.COMMIT_DARWIN
    assert commands.switch[4:5] == ("nohup",) and commands.switch[-3:] == ("env", "HOME=/var/root", f"{NEW}/activate")
    assert commands.check == ("sh", "-c", scripts.CHECK_DARWIN, "sh", NEW)


def test_port_and_identity_go_to_ssh() -> None:
    r = Remote.for_request(RecordingRunner(), request(target="root@10.0.0.5:2222", identity_file=Path("/k/id")),
                           DeploySettings(connect_timeout=3), KH)  # fmt: skip
    argv = r.argv(["true"])
    assert argv[-9:] == ["-p", "2222", "-i", "/k/id", "-o", "IdentitiesOnly=yes", "--", "root@10.0.0.5", "true"]
    assert "ConnectTimeout=3" in argv


def test_known_hosts_lines() -> None:
    assert known_hosts_line(TargetHost("root", "web1.zt"), KEY) == f"web1.zt {' '.join(KEY.split()[:2])}\n"
    assert known_hosts_line(TargetHost("root", "127.0.0.1", 2222), "ssh-ed25519 AAAA") == (
        "[127.0.0.1]:2222 ssh-ed25519 AAAA\n"
    )
    with pytest.raises(ValueError, match="not an ssh public key"):
        known_hosts_line(TargetHost("root", "h"), "AGE-SECRET-KEY-1")
    assert "StrictHostKeyChecking=yes" in ssh_options(DeploySettings(), KH)
    assert "StrictHostKeyChecking=accept-new" not in ssh_options(DeploySettings(), KH)


def test_the_fast_path_needs_the_closure_the_profile_and_the_secrets_current() -> None:
    settings = DeploySettings()
    same = Facts(current=NEW, profile=NEW, digest=digest(SECRETS))
    assert deploy_commands(request(secrets=SECRETS), settings, same, "t").unchanged
    assert deploy_commands(request(), settings, same, "t").unchanged  # no secrets to upload
    assert not deploy_commands(request(secrets=SECRETS), settings, Facts(current=NEW, profile=NEW), "t").unchanged
    assert not deploy_commands(request(), settings, Facts(current=NEW, profile=OLD), "t").unchanged  # inhibited before
    changed = deploy_commands(request(secrets=SECRETS), settings, Facts(current=NEW, profile=NEW, digest="x"), "t")
    assert not changed.unchanged and changed.upload is not None


def test_facts_parse_the_preflight_output() -> None:
    text = (
        f"current={OLD}\nprofile={OLD}\nprofile_link=system-12-link\nbooted_kernel=/nix/store/k1\n"
        "booted_initrd=/nix/store/i1\nbooted_kernel-modules=\ndigest=abc\nlauncher=systemd\n"
    )
    facts = Facts.parse(text)
    assert facts == Facts(OLD, OLD, 12, {"kernel": "/nix/store/k1", "initrd": "/nix/store/i1"}, "abc", "systemd")
    assert Facts.parse("profile_link=\n").generation is None


def test_a_reboot_is_needed_when_a_boot_part_differs() -> None:
    booted = Facts(booted={"kernel": "/k1", "initrd": "/i1", "kernel-modules": "/m1"})
    assert not needs_reboot(booted, {"kernel": "/k1", "initrd": "/i1", "kernel-modules": "/m1"})
    assert needs_reboot(booted, {"kernel": "/k2", "initrd": "/i1", "kernel-modules": "/m1"})
    assert not needs_reboot(Facts(), {"kernel": "/k2"})  # no /run/booted-system: unknown


def test_the_archive_carries_owners_and_modes_and_the_marker() -> None:
    data = archive(SECRETS, "/var/lib/sops-nix", "d1g3st", mtime=1)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: (m.type, oct(m.mode), m.uname, m.gname, m.uid, m.gid) for m in tar.getmembers()}
        assert tar.extractfile("key.txt").read() == SECRETS["/var/lib/sops-nix/key.txt"].data  # type: ignore[union-attr]
        assert tar.extractfile(MARKER).read() == b"d1g3st\n"  # type: ignore[union-attr]
    assert members == {
        ".": (tarfile.DIRTYPE, "0o711", "root", "root", 0, 0),
        "activation": (tarfile.DIRTYPE, "0o711", "root", "root", 0, 0),
        "activation/per-machine": (tarfile.DIRTYPE, "0o711", "root", "root", 0, 0),
        "activation/per-machine/web1": (tarfile.DIRTYPE, "0o711", "root", "root", 0, 0),
        "activation/per-machine/web1/pw": (tarfile.DIRTYPE, "0o711", "root", "root", 0, 0),
        "activation/per-machine/web1/pw/hash": (tarfile.REGTYPE, "0o440", "alice", "users", 0, 0),
        "key.txt": (tarfile.REGTYPE, "0o600", "root", "root", 0, 0),
        MARKER: (tarfile.REGTYPE, "0o400", "root", "root", 0, 0),
    }
    only_root = archive({"/var/lib/sops-nix/key.txt": SECRETS["/var/lib/sops-nix/key.txt"]}, "/var/lib/sops-nix", "d")
    with tarfile.open(fileobj=io.BytesIO(only_root)) as tar:
        assert oct(tar.getmember(".").mode) == "0o700"


def test_the_digest_changes_with_any_byte_owner_or_mode_and_holds_no_secret() -> None:
    base = digest(SECRETS)
    assert base == digest(dict(reversed(list(SECRETS.items()))))
    key = "/var/lib/sops-nix/key.txt"
    for changed in (SecretFile(b"other", "root", "root", 0o600), SecretFile(SECRETS[key].data, "root", "root", 0o400),
                    SecretFile(SECRETS[key].data, "alice", "root", 0o600)):  # fmt: skip
        assert digest({**SECRETS, key: changed}) != base
    assert "SECRET" not in base


@pytest.mark.parametrize(
    "path",
    ["/etc/shadow", "/var/lib/sops-nix", "/var/lib/sops-nix/../x", "var/lib/sops-nix/k", "/var/lib/sops-nixx/k",
     "/var/lib/sops-nix//k", f"/var/lib/sops-nix/{MARKER}"],
)  # fmt: skip
def test_secret_paths_outside_the_root_are_refused(path: str) -> None:
    with pytest.raises(DeployError, match=r"machine web1: secret path .* below /var/lib/sops-nix"):
        check_paths("web1", {path: SecretFile(b"x")}, "/var/lib/sops-nix")


def test_settings_keep_the_watchdog_behind_the_switch_and_the_lock_behind_the_watchdog() -> None:
    DeploySettings(switch_timeout=2, confirm_timeout=1, watchdog_seconds=4, lock_seconds=5)
    with pytest.raises(ConfigError, match="watchdog_seconds"):
        DeploySettings(switch_timeout=600, confirm_timeout=60, watchdog_seconds=600)
    with pytest.raises(ConfigError, match="lock_seconds"):
        DeploySettings(watchdog_seconds=900, lock_seconds=900)
    with pytest.raises(ConfigError, match="state_dir"):
        DeploySettings(state_dir="run/x")
