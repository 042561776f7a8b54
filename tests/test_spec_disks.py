"""The disk layout of the spec (fleet_sdk.spec.disks, pure) and the disko engine's DiskLayout, its
subclass adding `from_nix_file`: a machine holds either, and both behave alike."""

from __future__ import annotations

from fleet_sdk import disko
from fleet_sdk.spec import HetznerHost, Machine
from fleet_sdk.spec import disks as spec_disks

HOST = HetznerHost(server_type="cx22", location="fsn1")


def test_the_engines_layout_is_the_specs_with_a_nix_reader() -> None:
    assert issubclass(disko.DiskLayout, spec_disks.DiskLayout)
    assert hasattr(disko.DiskLayout, "from_nix_file") and not hasattr(spec_disks.DiskLayout, "from_nix_file")
    assert disko.PlannedPartition is spec_disks.PlannedPartition
    assert type(disko.DiskLayout.from_disko({})) is disko.DiskLayout


def test_a_machine_keeps_the_engines_layout_as_given() -> None:
    layout = disko.zfs_root("/dev/sda", boot="bios")
    machine = Machine(name="web", host=HOST, disks=layout)
    assert machine.disks is layout
    assert machine.model_copy(update={"tags": ("x",)}).disks is layout


def test_a_layout_given_as_data_renders_checks_and_plans_as_the_engines() -> None:
    layout = disko.zfs_root("/dev/sda", boot="bios")
    machine = Machine(name="web", host=HOST, disks=layout.to_disko())
    read = machine.disks
    assert type(read) is spec_disks.DiskLayout
    assert read == layout and layout == read
    assert Machine(name="web", host=HOST, disks=layout) == machine
    assert read.render() == layout.render()
    assert read.check(boot="bios", disk_bytes=40 * 10**9) == layout.check(boot="bios", disk_bytes=40 * 10**9) == []
    assert read.partition_plan("main", 40 * 10**9) == layout.partition_plan("main", 40 * 10**9)
    assert machine.model_dump(mode="json") == Machine(name="web", host=HOST, disks=layout).model_dump(mode="json")


def test_layouts_that_differ_are_unequal_whichever_class_holds_them() -> None:
    bios = disko.zfs_root("/dev/sda", boot="bios")
    uefi = spec_disks.DiskLayout.from_disko(disko.zfs_root("/dev/sda", boot="uefi").to_disko())
    assert bios != uefi and uefi != bios
    assert spec_disks.DiskLayout() != {}
