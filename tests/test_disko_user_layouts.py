"""The stock layouts the prod stack uses against the disko files the fleet's machines were installed
with (tests/fixtures/disko_user/, read with the real nix-instantiate).

disko names each GPT partition `disk-<disk>-<partition>` and mounts by that label, so an installed
machine keeps booting only if the layout fleet_sdk writes has the same disk and partition names; the
rest of the layout (sizes, pool and dataset options) must match too, or the install step would see a
changed layout. With CI=true a missing nix-instantiate fails these tests; elsewhere they are skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sdk.disko import DiskLayout, DiskoError, LuksKey, zfs_root
from fleet_sdk.tools import nix
from tests.tools import require

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "disko_user"
GB = 10**9
# Apple AP0512J (pyrite's NVMe): 465.9 GiB
APPLE_512 = 500_277_790_720

# machine -> (the layout the prod stack builds, its disk name, the disk's size in bytes)
STOCK: dict[str, tuple[DiskLayout, str, int]] = {
    "cinnabar": (
        zfs_root("/dev/sda", boot="bios", bios_names=("boot", "grub"), zfs_mountpoints=True),
        "main",
        160 * GB,
    ),
    "magnetite": (
        zfs_root(
            "/dev/sda",
            boot="bios",
            bios_names=("boot", "grub"),
            zfs_mountpoints=True,
            datasets={
                "root/podman": "/var/lib/containers",
                "root/cognee": "/var/lib/cognee",
                "root/docker": "/var/lib/docker",
            },
            dataset_options={
                "root/nixos": {"reservation": "10G"},
                "root/home": {"reservation": "4G"},
                "root/nix": {"com.sun:auto-snapshot": "false", "quota": "250G"},
            },
        ),
        "main",
        320 * GB,
    ),
    "electrum": (
        zfs_root("/dev/sda", boot="uefi", disk="primary", esp_mount_options=None, zfs_mountpoints=True),
        "primary",
        160 * GB,
    ),
    "galena": (
        zfs_root("/dev/sda", boot="uefi", disk="primary", esp_mount_options=None, zfs_mountpoints=True),
        "primary",
        100 * GB,
    ),
    "scheelite": (
        zfs_root("/dev/sda", boot="uefi", disk="primary", esp_mount_options=None, zfs_mountpoints=True),
        "primary",
        100 * GB,
    ),
    "pyrite": (
        zfs_root(
            "/dev/disk/by-id/nvme-APPLE_SSD_AP0512J_C08843605KKHV4MAK_1",
            boot="uefi",
            disk="primary",
            esp_mount_options=None,
            zfs_mountpoints=True,
            pool_options={"ashift": "12"},
            root_fs_options={"xattr": "sa", "acltype": "posixacl"},
            luks=LuksKey(
                "per-machine/pyrite/zfs",
                name="cryptroot",
                settings={"allowDiscards": True, "bypassWorkqueues": True},
                add_key_slot=True,
                enroll_fido2=False,
                enroll_recovery=False,
            ),
        ),
        "primary",
        APPLE_512,
    ),
}
# the labels each machine's partitions carry today, written out so that a wrong fixture shows too
LABELS = {
    "cinnabar": ["disk-main-boot", "disk-main-grub", "disk-main-zfs"],
    "magnetite": ["disk-main-boot", "disk-main-grub", "disk-main-zfs"],
    **{m: ["disk-primary-ESP", "disk-primary-zfs"] for m in ("electrum", "galena", "scheelite", "pyrite")},
}
MACHINES = sorted(STOCK)


@pytest.fixture(autouse=True)
def _nix_instantiate() -> None:
    require((nix.NIX_INSTANTIATE, "nix-bin"))


@pytest.fixture(scope="module")
def installed() -> dict[str, DiskLayout]:
    require((nix.NIX_INSTANTIATE, "nix-bin"))
    return {m: DiskLayout.from_nix_file(FIXTURES / f"{m}.nix") for m in MACHINES}


def plan(layout: DiskLayout, disk: str, size: int) -> list[tuple[int, str, str, str, int, int]]:
    return [
        (p.number, p.name, p.type_code, p.label, p.start_sector, p.end_sector)
        for p in layout.partition_plan(disk, size)
    ]


def labels(layout: DiskLayout, disk: str, size: int) -> list[str]:
    return [p.label for p in layout.partition_plan(disk, size)]


def test_every_fixture_has_a_stock_layout() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.nix")) == MACHINES


@pytest.mark.parametrize("machine", MACHINES)
def test_stock_layout_equals_the_installed_one(installed: dict[str, DiskLayout], machine: str) -> None:
    stock, _, _ = STOCK[machine]
    assert stock.to_disko() == installed[machine].to_disko()
    assert stock.render() == installed[machine].render()


@pytest.mark.parametrize("machine", MACHINES)
def test_stock_layout_keeps_the_gpt_labels(installed: dict[str, DiskLayout], machine: str) -> None:
    stock, disk, size = STOCK[machine]
    assert labels(installed[machine], disk, size) == LABELS[machine]
    assert plan(stock, disk, size) == plan(installed[machine], disk, size)


@pytest.mark.parametrize("machine", MACHINES)
def test_stock_layout_passes_the_checks(machine: str) -> None:
    stock, _, size = STOCK[machine]
    boot = "bios" if machine in ("cinnabar", "magnetite") else "uefi"
    assert stock.check(boot=boot, disk_bytes=size) == []


def test_the_default_naming_would_relabel_the_installed_machines(installed: dict[str, DiskLayout]) -> None:
    """Negative control: fleet_sdk's own names give other labels, which the comparison above catches."""
    bios = zfs_root("/dev/sda", boot="bios")
    assert labels(bios, "main", 160 * GB) == ["disk-main-bios", "disk-main-boot", "disk-main-zfs"]
    assert labels(bios, "main", 160 * GB) != labels(installed["cinnabar"], "main", 160 * GB)
    assert bios.to_disko() != installed["cinnabar"].to_disko()
    uefi = zfs_root("/dev/sda", boot="uefi")
    assert labels(uefi, "main", 160 * GB) != labels(installed["electrum"], "primary", 160 * GB)
    # the names alone are not enough: the ESP's mountOptions and the ZFS mountpoints differ too
    renamed = zfs_root("/dev/sda", boot="uefi", disk="primary")
    assert labels(renamed, "primary", 160 * GB) == LABELS["electrum"]
    assert renamed.to_disko() != installed["electrum"].to_disko()


def test_dataset_options_must_name_a_dataset() -> None:
    with pytest.raises(DiskoError, match=r"zpool\.zroot\.datasets\.root/nixes: dataset_options names no dataset"):
        zfs_root(dataset_options={"root/nixes": {"quota": "1G"}})
    with pytest.raises(DiskoError, match=r"zpool\.zroot\.datasets\.root/nix: is a stock dataset already"):
        zfs_root(datasets={"root/nix": "/nix"})
