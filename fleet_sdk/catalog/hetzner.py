"""Hetzner Cloud server types and locations.

Boot modes as this project's servers boot: shared x86 types (cx, cpx) start with legacy BIOS,
dedicated (ccx) and Arm (cax) types with UEFI. Disk sizes are the local NVMe/SSD in GB.
"""

from __future__ import annotations

from fleet_sdk.catalog import Architecture, BootMode, ServerShape

EU = ("fsn1", "nbg1", "hel1")
ALL = ("fsn1", "nbg1", "hel1", "ash", "hil", "sin")

LOCATIONS: dict[str, str] = {
    "fsn1": "Falkenstein, DE",
    "nbg1": "Nuremberg, DE",
    "hel1": "Helsinki, FI",
    "ash": "Ashburn, VA, US",
    "hil": "Hillsboro, OR, US",
    "sin": "Singapore",
}


def _row(name: str, arch: Architecture, boot: BootMode, vcpus: int, memory_gb: float, disk_gb: int) -> ServerShape:
    return ServerShape(name, arch, boot, vcpus, memory_gb, disk_gb)


# name -> (shape, locations where it is sold)
SERVER_TYPES: dict[str, tuple[ServerShape, tuple[str, ...]]] = {
    s.name: (s, where)
    for where, shapes in (
        (
            EU,
            [
                # shared Intel, generation 2 and 3
                _row("cx22", "x86_64", "bios", 2, 4, 40),
                _row("cx32", "x86_64", "bios", 4, 8, 80),
                _row("cx42", "x86_64", "bios", 8, 16, 160),
                _row("cx52", "x86_64", "bios", 16, 32, 320),
                _row("cx23", "x86_64", "bios", 2, 4, 40),
                _row("cx33", "x86_64", "bios", 4, 8, 80),
                _row("cx43", "x86_64", "bios", 8, 16, 160),
                _row("cx53", "x86_64", "bios", 16, 32, 320),
                # shared Ampere Arm
                _row("cax11", "aarch64", "uefi", 2, 4, 40),
                _row("cax21", "aarch64", "uefi", 4, 8, 80),
                _row("cax31", "aarch64", "uefi", 8, 16, 160),
                _row("cax41", "aarch64", "uefi", 16, 32, 320),
            ],
        ),
        (
            ALL,
            [
                # shared AMD
                _row("cpx11", "x86_64", "bios", 2, 2, 40),
                _row("cpx21", "x86_64", "bios", 3, 4, 80),
                _row("cpx31", "x86_64", "bios", 4, 8, 160),
                _row("cpx41", "x86_64", "bios", 8, 16, 240),
                _row("cpx51", "x86_64", "bios", 16, 32, 360),
                # dedicated AMD
                _row("ccx13", "x86_64", "uefi", 2, 8, 80),
                _row("ccx23", "x86_64", "uefi", 4, 16, 160),
                _row("ccx33", "x86_64", "uefi", 8, 32, 240),
                _row("ccx43", "x86_64", "uefi", 16, 64, 360),
                _row("ccx53", "x86_64", "uefi", 32, 128, 600),
                _row("ccx63", "x86_64", "uefi", 48, 192, 960),
            ],
        ),
    )
    for s in shapes
}


def server_type(name: str) -> ServerShape | None:
    row = SERVER_TYPES.get(name)
    return row[0] if row else None


def locations_of(name: str) -> tuple[str, ...]:
    row = SERVER_TYPES.get(name)
    return row[1] if row else ()


# What a change of a Hetzner Cloud resource's inputs does, as terraform-provider-hcloud's schema (which
# pulumi-hcloud bridges) decides it; property paths in Pulumi's wire names. A replacing property is
# ForceNew: the resource is deleted and created again (a server's disk with it). A rebooting property
# is changed in place with the machine powered off (`hcloud server change-type`).
SERVER_RESOURCE = "hcloud:index/server:Server"

REPLACING: dict[str, tuple[str, ...]] = {
    SERVER_RESOURCE: ("image", "location", "datacenter", "userData", "sshKeys"),
    "hcloud:index/sshKey:SshKey": ("publicKey",),
    # hcloud:index/firewall:Firewall: name, labels and rules all change in place
}

REBOOTING: dict[str, tuple[str, ...]] = {
    SERVER_RESOURCE: ("serverType",),
}
