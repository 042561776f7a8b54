"""The prod fleet: two Hetzner VPSes, two GCP nodes, four darwin workstations.

`build(settings)` returns the Fleet; which machines get cloud resources comes from the stack config
key fleet:enabled (applied by the loader, so every stack behaves the same).
"""

from fleet_sdk.disko import zfs_root
from fleet_sdk.spec import Fleet, GcpHost, HetznerHost, Machine, Role, ServiceInstance
from fleet_sdk.stackconfig import StackSettings
from fleet_sdk.vars import builtins

WORKSTATIONS = ("stibnite", "blackphos", "rosegold", "argentum")
DOMAIN = "zt"


def build(settings: StackSettings) -> Fleet:
    machines = [
        Machine(
            name="cinnabar",
            generators=builtins.nixos_defaults("cinnabar", [DOMAIN]),
            description="primary VPS, ZeroTier controller",
            tags=("nixos", "cloud", "hetzner", "controller"),
            host=HetznerHost(server_type="cx43", location="fsn1", protect=True),
            disks=zfs_root("/dev/sda", boot="bios"),
        ),
        Machine(
            name="electrum",
            generators=builtins.nixos_defaults("electrum", [DOMAIN]),
            description="secondary VPS",
            tags=("nixos", "cloud", "hetzner", "peer"),
            host=HetznerHost(server_type="ccx23", location="fsn1", protect=True),
            disks=zfs_root("/dev/sda", boot="uefi"),
        ),
        Machine(
            name="galena",
            generators=builtins.nixos_defaults("galena", [DOMAIN]),
            description="CPU node",
            tags=("nixos", "cloud", "gcp", "peer"),
            host=GcpHost(machine_type="e2-standard-8", zone="us-central1-b"),
            disks=zfs_root("/dev/sda", boot="uefi"),
        ),
        Machine(
            name="scheelite",
            generators=builtins.nixos_defaults("scheelite", [DOMAIN]),
            description="GPU node",
            tags=("nixos", "cloud", "gcp", "gpu", "peer"),
            host=GcpHost(machine_type="n1-standard-8", zone="us-central1-f", gpu_type="nvidia-tesla-t4", gpu_count=1),
            disks=zfs_root("/dev/sda", boot="uefi"),
        ),
        *(
            Machine(
                name=name,
                machine_class="darwin",
                system="aarch64-darwin",
                description="workstation",
                tags=("darwin", "workstation"),
                target_host=f"{name}.zt",
            )
            for name in WORKSTATIONS
        ),
    ]
    return Fleet(
        name="fleet",
        domain=DOMAIN,
        machines=tuple(machines),
        instances=(
            ServiceInstance(
                name="zerotier",
                roles={
                    # the workstations run their own zerotier-one: admitted by member id (stack config
                    # fleet:zerotierMembers, {"stibnite": "<10 hex digits>", …})
                    "controller": Role(
                        machines=("cinnabar",),
                        settings={"allowedIds": sorted(settings.object("fleet:zerotierMembers", {}).values())},
                    ),
                    "peer": Role(tags=("peer",)),
                },
            ),
        ),
    )
