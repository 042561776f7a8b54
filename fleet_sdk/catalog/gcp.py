"""Google Compute Engine machine families, GPUs and zones.

Machine type names are `<family>-<kind>-<vcpus>` (plus a few shared-core names); the family decides
the architecture and whether accelerators can be attached. GCE firmware boots UEFI images, which is
how this project's GCP machines are partitioned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleet_sdk.catalog import Architecture, ServerShape


@dataclass(frozen=True)
class Family:
    name: str
    architecture: Architecture
    kinds: dict[str, tuple[int, ...]]  # kind -> vCPU counts sold
    memory_per_vcpu: dict[str, float]  # kind -> GB per vCPU
    gpus: tuple[str, ...] = ()  # accelerator types that can be attached


_STD = {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9}
_NEW = {"standard": 4.0, "highmem": 8.0, "highcpu": 1.0}
_DUO = {"standard": 4.0, "highmem": 8.0, "highcpu": 2.0}  # highcpu with 2 GB a vCPU (C2D, C3, C4A)
# types whose memory is not their vCPUs times their kind's GB per vCPU
_MEMORY_GB = {"n2-highmem-128": 864.0}

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "e2",
            "x86_64",
            {"standard": (2, 4, 8, 16, 32), "highmem": (2, 4, 8, 16), "highcpu": (2, 4, 8, 16, 32)},
            _NEW,
        ),
        Family(
            "n1",
            "x86_64",
            {
                "standard": (1, 2, 4, 8, 16, 32, 64, 96),
                "highmem": (2, 4, 8, 16, 32, 64, 96),
                "highcpu": (2, 4, 8, 16, 32, 64, 96),
            },
            _STD,
            gpus=("nvidia-tesla-t4", "nvidia-tesla-p4", "nvidia-tesla-p100", "nvidia-tesla-v100"),
        ),
        Family(
            "n2",
            "x86_64",
            {
                "standard": (2, 4, 8, 16, 32, 48, 64, 80, 96, 128),
                "highmem": (2, 4, 8, 16, 32, 48, 64, 80, 96, 128),
                "highcpu": (2, 4, 8, 16, 32, 48, 64, 80, 96),
            },
            _NEW,
        ),
        Family(
            "n2d",
            "x86_64",
            {
                "standard": (2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224),
                "highmem": (2, 4, 8, 16, 32, 48, 64, 80, 96),
                "highcpu": (2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224),
            },
            _NEW,
        ),
        Family("c2", "x86_64", {"standard": (4, 8, 16, 30, 60)}, _NEW),
        Family("c2d", "x86_64", {k: (2, 4, 8, 16, 32, 56, 112) for k in ("standard", "highmem", "highcpu")}, _DUO),
        Family("c3", "x86_64", {k: (4, 8, 22, 44, 88, 176) for k in ("standard", "highmem", "highcpu")}, _DUO),
        Family("t2d", "x86_64", {"standard": (1, 2, 4, 8, 16, 32, 48, 60)}, _NEW),
        Family("t2a", "aarch64", {"standard": (1, 2, 4, 8, 16, 32, 48)}, _NEW),
        Family(
            "c4a",
            "aarch64",
            {k: (1, 2, 4, 8, 16, 32, 48, 64, 72) for k in ("standard", "highmem", "highcpu")},
            _DUO,
        ),
        # GPUs come built into these types; none can be added
        Family("g2", "x86_64", {"standard": (4, 8, 12, 16, 24, 32, 48, 96)}, _NEW),
    )
}

SHARED_CORE: dict[str, ServerShape] = {
    "e2-micro": ServerShape("e2-micro", "x86_64", "uefi", 2, 1, None),
    "e2-small": ServerShape("e2-small", "x86_64", "uefi", 2, 2, None),
    "e2-medium": ServerShape("e2-medium", "x86_64", "uefi", 2, 4, None),
    "f1-micro": ServerShape("f1-micro", "x86_64", "uefi", 1, 0.6, None),
    "g1-small": ServerShape("g1-small", "x86_64", "uefi", 1, 1.7, None),
}

GPU_COUNTS: dict[str, tuple[int, ...]] = {
    "nvidia-tesla-t4": (1, 2, 4),
    "nvidia-tesla-p4": (1, 2, 4),
    "nvidia-tesla-p100": (1, 2, 4),
    "nvidia-tesla-v100": (1, 2, 4, 8),
}

# region -> zone letters
REGIONS: dict[str, str] = {
    "us-central1": "abcf",
    "us-east1": "bcd",
    "us-east4": "abc",
    "us-east5": "abc",
    "us-south1": "abc",
    "us-west1": "abc",
    "us-west2": "abc",
    "us-west3": "abc",
    "us-west4": "abc",
    "northamerica-northeast1": "abc",
    "northamerica-northeast2": "abc",
    "southamerica-east1": "abc",
    "europe-west1": "bcd",
    "europe-west2": "abc",
    "europe-west3": "abc",
    "europe-west4": "abc",
    "europe-west6": "abc",
    "europe-west9": "abc",
    "europe-north1": "abc",
    "europe-central2": "abc",
    "europe-southwest1": "abc",
    "asia-east1": "abc",
    "asia-east2": "abc",
    "asia-northeast1": "abc",
    "asia-northeast3": "abc",
    "asia-south1": "abc",
    "asia-southeast1": "abc",
    "australia-southeast1": "abc",
    "me-west1": "abc",
    "africa-south1": "abc",
}

_TYPE = re.compile(r"^([a-z0-9]+)-([a-z]+)-(\d+)$")


def machine_type(name: str) -> tuple[ServerShape, Family | None] | None:
    """The shape of a machine type and its family, or None when GCE sells no such type."""
    if name in SHARED_CORE:
        return SHARED_CORE[name], FAMILIES["e2"] if name.startswith("e2") else None
    m = _TYPE.match(name)
    if not m:
        return None
    family = FAMILIES.get(m.group(1))
    kind, vcpus = m.group(2), int(m.group(3))
    if family is None or vcpus not in family.kinds.get(kind, ()):
        return None
    memory = _MEMORY_GB.get(name, round(vcpus * family.memory_per_vcpu[kind], 2))
    return ServerShape(name, family.architecture, "uefi", vcpus, memory, None), family


def zone_exists(zone: str) -> bool:
    region, _, letter = zone.rpartition("-")
    return len(letter) == 1 and letter in REGIONS.get(region, "")


def region_of(zone: str) -> str:
    return zone.rpartition("-")[0]


# What a change of a Compute Engine resource's inputs does, as terraform-provider-google's schema (which
# pulumi-gcp bridges) decides it; property paths in Pulumi's wire names, `[*]` any list element. A
# replacing property is ForceNew (metadataStartupScript is ForceNewIf, true for any change the stack
# can make): the instance is deleted and created again, its boot disk with it. A block listed in
# REPLACING_BLOCKS replaces when it appears or goes (ForceNew on the block: its element count), while
# its other fields change in place. A rebooting property needs the instance stopped for the update
# (allowStoppingForUpdate), as machineType does.
INSTANCE_RESOURCE = "gcp:compute/instance:Instance"

REPLACING: dict[str, tuple[str, ...]] = {
    INSTANCE_RESOURCE: (
        "name",
        "zone",
        "project",
        "hostname",
        "params",
        "metadataStartupScript",
        "bootDisk.deviceName",
        "bootDisk.diskEncryptionKeyRaw",
        "bootDisk.diskEncryptionKeyRsa",
        "bootDisk.diskEncryptionServiceAccount",
        "bootDisk.kmsKeySelfLink",
        "bootDisk.guestOsFeatures",
        "bootDisk.mode",
        "bootDisk.source",
        "bootDisk.forceAttach",
        "bootDisk.initializeParams.image",
        "bootDisk.initializeParams.type",
        "bootDisk.initializeParams.snapshot",
        "bootDisk.initializeParams.architecture",
        "bootDisk.initializeParams.provisionedIops",
        "bootDisk.initializeParams.provisionedThroughput",
        "bootDisk.initializeParams.enableConfidentialCompute",
        "bootDisk.initializeParams.storagePool",
        "bootDisk.initializeParams.resourceManagerTags",
        "bootDisk.initializeParams.resourcePolicies",
        "bootDisk.initializeParams.replicaZones",
        "bootDisk.initializeParams.sourceImageEncryptionKey",
        "bootDisk.initializeParams.sourceSnapshotEncryptionKey",
        "networkInterfaces[*].networkAttachment",
        "networkInterfaces[*].nicType",
        "networkInterfaces[*].queueCount",
        "networkInterfaces[*].vlan",
        "networkInterfaces[*].ipv6AccessConfigs[*].externalIpv6",
        "networkInterfaces[*].ipv6AccessConfigs[*].externalIpv6PrefixLength",
        "networkInterfaces[*].ipv6AccessConfigs[*].name",
        "networkPerformanceConfig",
        "guestAccelerators",
        "scratchDisks",
        "scheduling.preemptible",
        "scheduling.provisioningModel",
        "scheduling.terminationTime",
        "scheduling.maxRunDuration",
        "scheduling.onInstanceStopAction",
        "scheduling.localSsdRecoveryTimeout",
        "advancedMachineFeatures.enableUefiNetworking",
        "confidentialInstanceConfig",
        "reservationAffinity",
        "instanceEncryptionKey",
        "keyRevocationActionType",
        "workloadIdentityConfig",
    ),
    "gcp:compute/firewall:Firewall": ("name", "direction", "project", "params"),
}

REPLACING_BLOCKS: dict[str, tuple[str, ...]] = {
    INSTANCE_RESOURCE: ("bootDisk", "networkInterfaces[*]"),
}

REBOOTING: dict[str, tuple[str, ...]] = {
    INSTANCE_RESOURCE: (
        "machineType",
        "minCpuPlatform",
        "serviceAccount",
        "enableDisplay",
        "shieldedInstanceConfig",
        "advancedMachineFeatures",
        "networkInterfaces[*].network",
        "networkInterfaces[*].subnetwork",
    ),
}
