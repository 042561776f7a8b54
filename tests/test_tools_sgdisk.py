"""fleet_sdk.tools.sgdisk with a RecordingRunner: disko's sgdisk calls argv for argv, the retry
without --new when creating fails, and `--print`/`--info` output read back. tests/test_sgdisk_tool.py
runs the same against the real sgdisk on image files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sdk.errors import CommandError, SgdiskError
from fleet_sdk.testing import RecordingRunner
from fleet_sdk.tools import sgdisk
from fleet_sdk.tools.sgdisk import PartitionCommand as P

PRINT = b"""Disk sgx.img: 204800 sectors, 100.0 MiB
Sector size (logical): 512 bytes
Partitions will be aligned on 2048-sector boundaries

Number  Start (sector)    End (sector)  Size       Code  Name
   1            2048            4095   1024.0 KiB  EF02  boot
   2            4096          204766   98.0 MiB    8300  root
"""
INFO = b"""Partition GUID code: 21686148-6449-6E6F-744E-656564454649 (BIOS boot partition)
Partition unique GUID: 1AE6223E-FD2F-4D55-A9B6-14953B982565
First sector: 2048 (at 1024.0 KiB)
Last sector: 4095 (at 2.0 MiB)
Partition size: 2048 sectors (1024.0 KiB)
Attribute flags: 0000000000000000
Partition name: 'boot'
Partition GUID code: 0FC63DAF-8483-4772-8E79-3D69D8477DE4 (Linux filesystem)
Partition unique GUID: E892908E-2629-4F45-99AF-D8616BB7E54F
First sector: 4096 (at 2.0 MiB)
Last sector: 204766 (at 100.0 MiB)
Partition size: 200671 sectors (98.0 MiB)
Attribute flags: 0000000000000005
Partition name: 'root'
"""
BOOT = P(1, "0", "+1M", 0, "disk-main-boot", "EF02")
ROOT = P(2, "0", "-0", 2048, "disk-main-root", "8300", uuid="E892908E-2629-4F45-99AF-D8616BB7E54F", attributes=(2, 0))


@pytest.fixture
def device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sgdisk, "tool", lambda name: f"/sbin/{name}")
    image = tmp_path / "disk.img"
    image.write_bytes(b"")
    return image


def created(device: Path) -> list[list[str]]:
    d = str(device)
    return [
        ["/sbin/sgdisk", "--align-end", "--new=1:0:+1M", "--partition-guid=1:R", "--change-name=1:disk-main-boot",
         "--typecode=1:EF02", "--attributes=1:=:0", d],
        ["/sbin/sgdisk", "--align-end", "--set-alignment=2048", "--new=2:0:-0",
         "--partition-guid=2:E892908E-2629-4F45-99AF-D8616BB7E54F", "--change-name=2:disk-main-root",
         "--typecode=2:8300", "--attributes=2:=:0", "--attributes=2:set:2", "--attributes=2:set:0", d],
    ]  # fmt: skip


def test_a_blank_device_gets_a_fresh_table_then_each_partition(device: Path) -> None:
    runner = RecordingRunner().reply(returncode=2)  # blkid: no signature
    sgdisk.apply(runner, device, [BOOT, ROOT], timeout=30)
    d = str(device)
    assert runner.argvs == [["/sbin/blkid", "--probe", d], ["/sbin/sgdisk", "--clear", d], *created(device)]
    assert [c.check for c in runner.calls] == [False, True, True, True]
    assert {c.timeout for c in runner.calls} == {30}
    assert "no free space there" in runner.calls[2].hint and "partition 1 (disk-main-boot)" in runner.calls[2].hint


def test_a_device_with_a_signature_keeps_its_table(device: Path) -> None:
    runner = RecordingRunner().reply(stdout=b"")
    sgdisk.apply(runner, device, [BOOT])
    assert runner.argvs == [["/sbin/blkid", "--probe", str(device)], created(device)[0]]
    assert {c.timeout for c in runner.calls} == {60.0}


def test_an_existing_partition_is_renamed_and_retyped_when_creating_it_fails(device: Path) -> None:
    runner = RecordingRunner().reply().reply(returncode=4, stderr=b"Could not create partition 1").reply()
    sgdisk.apply(runner, device, [BOOT])
    retry = runner.calls[2]
    assert list(retry.argv) == [
        "/sbin/sgdisk", "--partition-guid=1:R", "--change-name=1:disk-main-boot", "--typecode=1:EF02",
        "--attributes=1:=:0", str(device),
    ]  # fmt: skip
    assert retry.check is False


def test_when_the_retry_fails_too_the_creations_error_is_raised(device: Path) -> None:
    runner = RecordingRunner().reply().reply(returncode=4, stderr=b"Could not create partition 2").reply(returncode=4)
    with pytest.raises(CommandError, match="Could not create partition 2") as info:
        sgdisk.apply(runner, device, [ROOT, BOOT])
    assert "--new=2:0:-0" in info.value.argv and "no free space there" in str(info.value)
    assert len(runner.calls) == 3  # nothing after the failed partition


def test_read_table(device: Path) -> None:
    runner = RecordingRunner().reply(stdout=PRINT).reply(stdout=INFO)
    entries = sgdisk.read_table(runner, device, timeout=9)
    assert runner.argvs == [
        ["/sbin/sgdisk", "--print", str(device)],
        ["/sbin/sgdisk", "--info=1", "--info=2", str(device)],
    ]
    assert {c.timeout for c in runner.calls} == {9}
    assert entries == [
        sgdisk.TableEntry(1, "boot", "EF02", "21686148-6449-6E6F-744E-656564454649",
                          "1AE6223E-FD2F-4D55-A9B6-14953B982565", 2048, 4095, ()),
        sgdisk.TableEntry(2, "root", "8300", "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                          "E892908E-2629-4F45-99AF-D8616BB7E54F", 4096, 204766, (0, 2)),
    ]  # fmt: skip


def test_a_device_without_partitions_is_read_with_one_call(device: Path) -> None:
    runner = RecordingRunner().reply(stdout=PRINT.split(b"Number")[0])
    assert sgdisk.read_table(runner, device) == []
    assert len(runner.calls) == 1


def test_info_output_that_does_not_match_the_listing_is_an_sgdisk_error(device: Path) -> None:
    one_block = INFO.split(b"Partition GUID code: 0FC6")[0]
    runner = RecordingRunner().reply(stdout=PRINT).reply(stdout=one_block)
    with pytest.raises(SgdiskError, match="1 of 2 partitions"):
        sgdisk.read_table(runner, device)
    garbled = (
        RecordingRunner().reply(stdout=PRINT).reply(stdout=INFO.replace(b"First sector: 4096", b"First sector: x"))
    )
    with pytest.raises(SgdiskError, match=r"--info=2"):
        sgdisk.read_table(garbled, device)


def test_a_missing_device_or_sgdisk_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = RecordingRunner()
    with pytest.raises(SgdiskError, match="does not exist"):
        sgdisk.apply(runner, tmp_path / "absent.img", [BOOT])
    with pytest.raises(SgdiskError, match="does not exist"):
        sgdisk.read_table(runner, tmp_path / "absent.img")
    monkeypatch.setattr(sgdisk, "tool", lambda name: None)
    (tmp_path / "disk.img").write_bytes(b"")
    with pytest.raises(SgdiskError, match=r"sgdisk is not installed; install it \(Debian package gdisk\)"):
        sgdisk.read_table(runner, tmp_path / "disk.img")
    with pytest.raises(SgdiskError, match=r"blkid is not installed; install it \(Debian package util-linux\)"):
        sgdisk.apply(runner, tmp_path / "disk.img", [BOOT])
    assert runner.calls == []


def test_an_sgdisk_failure_when_reading_is_raised(device: Path) -> None:
    runner = RecordingRunner().reply(returncode=2, stderr=b"Problem opening disk.img for reading!")
    with pytest.raises(CommandError, match="Problem opening"):
        sgdisk.read_table(runner, device)
