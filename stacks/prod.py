"""The prod fleet as it runs today: three Hetzner servers, two GCP nodes, a bare-metal NixOS laptop and
four darwin workstations, with the ZeroTier network controlled by cinnabar.

Facts follow the user's fleet repository: the clan inventory (tags, descriptions, deploy targets), the
terranix machine tables (server types, locations, GPU) and each machine's disko file (disk and
partition names decide the GPT labels an installed machine already has, so they must not change).
Which machines get cloud resources comes from the stack config key fleet:enabled (applied by the
loader, so every stack behaves the same).
"""

from typing import Any

from fleet_sdk.disko import DiskLayout, LuksKey, zfs_root
from fleet_sdk.spec import Fleet, GcpHost, Generator, HetznerHost, Machine, Role, ServiceInstance
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.vars import stock as builtins

DOMAIN = "zt"

# Members that run their own zerotier-one (the darwin workstations and a phone), admitted by the
# address `zerotier-cli listnetworks` shows on each (clan's allowedIps).
EXTERNAL_ZEROTIER_MEMBERS = (
    "fddb:4344:343b:14b9:399:930e:e971:d9e0",  # blackphos
    "fddb:4344:343b:14b9:399:9324:19d9:3451",  # stibnite
    "fddb:4344:343b:14b9:399:93f7:54d5:ad7e",  # argentum
    "fddb:4344:343b:14b9:399:9315:3431:ee8",  # rosegold
    "fddb:4344:343b:14b9:399:939f:c45d:577c",  # android phone
)

# darwin workstations: (name, tags besides darwin/workstation/laptop, description, deploy target)
WORKSTATIONS = (
    ("blackphos", ("fleet",), "raquel's laptop (primary user), crs58 admin", "crs58@blackphos.zt"),
    ("stibnite", ("controller",), "crs58's primary workstation, deployment controller", "crs58@stibnite.zt"),
    ("rosegold", ("fleet",), "janettesmith's laptop (primary user), cameron admin", "cameron@rosegold.zt"),
    ("argentum", ("fleet",), "christophersmith's laptop (primary user), cameron admin", "cameron@argentum.zt"),
)


def _nixos(name: str, *, generators: tuple[Generator, ...] = (), **fields: Any) -> Machine:
    return Machine(
        name=name,
        generators=builtins.nixos_defaults(name, [DOMAIN]) + generators,
        target_host=f"root@{name}.zt",
        **fields,
    )


def _bios_zfs(**options: Any) -> DiskLayout:
    """GRUB on GPT: disk `main`, partitions `boot` (EF02) and `grub` (/boot), then `zfs`."""
    return zfs_root("/dev/sda", boot="bios", bios_names=("boot", "grub"), zfs_mountpoints=True, **options)


def _uefi_zfs(device: str = "/dev/sda", **options: Any) -> DiskLayout:
    """disk `primary`: partitions `ESP` (EF00, /boot) and `zfs`."""
    return zfs_root(device, boot="uefi", disk="primary", esp_mount_options=None, zfs_mountpoints=True, **options)


def build(settings: StackSettings) -> Fleet:
    machines = [
        _nixos(
            "cinnabar",
            description="Primary VPS, zerotier controller",
            tags=("nixos", "cloud", "hetzner", "controller"),
            host=HetznerHost(server_type="cx43", location="fsn1", protect=True, dns=True),
            disks=_bios_zfs(),
        ),
        _nixos(
            "electrum",
            description="Secondary test VM, zerotier peer",
            tags=("nixos", "cloud", "hetzner", "peer"),
            # a test VM: switched off and on by fleet:enabled, so nothing protects it
            host=HetznerHost(server_type="ccx23", location="fsn1", dns=True),
            disks=_uefi_zfs(),
        ),
        _nixos(
            "magnetite",
            description="Build infrastructure server (niks3, buildbot, Gitea)",
            tags=("nixos", "cloud", "hetzner", "peer"),
            host=HetznerHost(
                server_type="cx53", location="fsn1", protect=True, dns=True, open_ports=("tcp/80", "tcp/443")
            ),
            disks=_bios_zfs(
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
        ),
        _nixos(
            "galena",
            description="GCP CPU node (e2-standard-8), zerotier peer",
            tags=("nixos", "cloud", "gcp", "peer"),
            host=GcpHost(machine_type="e2-standard-8", zone="us-central1-b"),
            disks=_uefi_zfs(),
        ),
        _nixos(
            "scheelite",
            description="GCP GPU node (n1-standard-8, T4), zerotier peer",
            tags=("nixos", "cloud", "gcp", "gpu", "peer"),
            host=GcpHost(machine_type="n1-standard-8", zone="us-central1-f", gpu_type="nvidia-tesla-t4", gpu_count=1),
            disks=_uefi_zfs(),
        ),
        _nixos(
            "pyrite",
            description="Apple MacBookPro14,1 bare-metal NixOS laptop, zerotier peer",
            tags=("nixos", "laptop", "peer"),
            generators=(builtins.disk_passphrase("zfs", "key"),),
            disks=_uefi_zfs(
                # the first NVMe namespace by id: a second, tiny namespace must never be written
                "/dev/disk/by-id/nvme-APPLE_SSD_AP0512J_C08843605KKHV4MAK_1",
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
        ),
        *(
            Machine(
                name=name,
                machine_class="darwin",
                system="aarch64-darwin",
                description=description,
                tags=("darwin", "workstation", "laptop", *tags),
                target_host=target,
            )
            for name, tags, description, target in WORKSTATIONS
        ),
    ]
    return Fleet(
        name="fleet",
        domain=DOMAIN,
        machines=tuple(machines),
        instances=(
            ServiceInstance(
                name="zerotier",
                input="clan-core",
                roles={
                    "controller": Role(
                        machines=("cinnabar",), settings={"allowedIps": list(EXTERNAL_ZEROTIER_MEMBERS)}
                    ),
                    "peer": Role(tags=("peer",)),
                },
            ),
        ),
    )
