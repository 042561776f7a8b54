"""fleet_sdk.tools.nixos_anywhere with a RecordingRunner: the exact nixos-anywhere command for an
install (flake, target, key, extra files, disk keys, phases, build and substitution switches), and
requests refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sdk.errors import CommandError, FleetError
from fleet_sdk.testing import RecordingRunner
from fleet_sdk.tools import nixos_anywhere as na


def test_the_smallest_install() -> None:
    runner = RecordingRunner()
    na.install(runner, na.Install(flake=".", machine="web1", target="203.0.113.7"))
    assert runner.argvs == [["nixos-anywhere", "--flake", ".#web1", "--target-host", "root@203.0.113.7"]]
    call = runner.calls[0]
    assert (call.timeout, call.check, call.input, call.env) == (3600.0, True, None, None)
    assert call.hint.startswith("installing web1 on 203.0.113.7 failed")


def test_every_option(tmp_path: Path) -> None:
    request = na.Install(
        flake="/fleet",
        machine="db",
        target="admin@[fd00::2]:2222",
        identity_file=tmp_path / "id_ed25519",
        extra_files=tmp_path / "extra",
        disk_keys=(
            na.DiskKey("/run/partitioning-secrets/zfs/key", tmp_path / "zfs.key"),
            na.DiskKey("/tmp/luks.key", tmp_path / "luks.key"),
        ),
        phases=("disko", "install"),
        ssh_options=("UserKnownHostsFile=/k/known_hosts", "StrictHostKeyChecking=yes"),
        build_on_remote=True,
        substitute_on_destination=False,
    )
    runner = RecordingRunner()
    na.install(runner, request, timeout=120)
    assert runner.argvs == [
        [
            "nixos-anywhere", "--flake", "/fleet#db", "--target-host", "admin@fd00::2", "--ssh-port", "2222",
            "-i", str(tmp_path / "id_ed25519"),
            "--ssh-option", "UserKnownHostsFile=/k/known_hosts", "--ssh-option", "StrictHostKeyChecking=yes",
            "--extra-files", str(tmp_path / "extra"),
            "--disk-encryption-keys", "/run/partitioning-secrets/zfs/key", str(tmp_path / "zfs.key"),
            "--disk-encryption-keys", "/tmp/luks.key", str(tmp_path / "luks.key"),
            "--phases", "disko,install",
            "--build-on-remote",
            "--no-substitute-on-destination",
        ]
    ]  # fmt: skip
    assert runner.calls[0].timeout == 120


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"flake": ".#web1"}, "without '#'"),
        ({"flake": ""}, "without '#'"),
        ({"machine": ""}, "nixosConfigurations name"),
        ({"phases": ("disko", "format")}, "unknown phases ['format']"),
        ({"phases": ("install", "install")}, "name one twice"),
        ({"disk_keys": (na.DiskKey("key", Path("/k")),)}, "must be absolute"),
        ({"target": "root@a;b"}, "target host: 'root@a;b'"),
    ],
)
def test_bad_requests_run_nothing(change: dict[str, object], words: str) -> None:
    fields: dict[str, object] = {"flake": ".", "machine": "web1", "target": "web1", **change}
    runner = RecordingRunner()
    with pytest.raises(FleetError) as info:
        na.install(runner, na.Install(**fields))  # type: ignore[arg-type]
    assert words in str(info.value) and runner.calls == []


def test_a_failed_install_is_raised() -> None:
    runner = RecordingRunner().reply(returncode=1, stderr=b"+ disko: no space left")
    with pytest.raises(CommandError, match="no space left") as info:
        na.install(runner, na.Install(flake=".", machine="web1", target="web1"))
    assert info.value.returncode == 1
