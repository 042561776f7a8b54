"""Every disko device and content type with its options (reference/disko.md §2), as pydantic models.

Field names are disko's own option names, so a layout reads like the disko documentation and JSON
maps one to one. Unknown options are errors. Only what was set is emitted again (`to_disko`); `type`
is required where disko dispatches on it and defaulted where disko defaults it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

_GUID = r"[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}"
ABSPATH_PATTERN = r"^/"
SIZE_PATTERN = r"^([0-9]+[KMGTP]?|100%)$"
TYPE_PATTERN = rf"^([A-Fa-f0-9]{{4}}|{_GUID})$"
GUID_PATTERN = rf"^{_GUID}$"
SWAPFILE_SIZE_PATTERN = r"^([0-9]+[KMGTP])?$"
IMAGE_SIZE_PATTERN = r"^[0-9]+[KMGTP]?$"
AbsPath = Annotated[str, StringConstraints(pattern=ABSPATH_PATTERN)]
GptSize = Annotated[str, StringConstraints(pattern=SIZE_PATTERN)]
GptType = Annotated[str, StringConstraints(pattern=TYPE_PATTERN)]
Guid = Annotated[str, StringConstraints(pattern=GUID_PATTERN)]
SwapFileSize = Annotated[str, StringConstraints(pattern=SWAPFILE_SIZE_PATTERN)]
ImageSize = Annotated[str, StringConstraints(pattern=IMAGE_SIZE_PATTERN)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class Node(BaseModel):
    """Options every disko node accepts: the hook scripts."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    preCreateHook: str | None = None  # noqa: N815 (disko's option names)
    postCreateHook: str | None = None  # noqa: N815
    preMountHook: str | None = None  # noqa: N815
    postMountHook: str | None = None  # noqa: N815
    preUnmountHook: str | None = None  # noqa: N815
    postUnmountHook: str | None = None  # noqa: N815


def _no_null(*fields: str) -> Any:
    """disko types these as str/int without null: leaving the option out is fine, `null` is not."""

    def refuse(cls: type[BaseModel], value: Any) -> Any:
        if value is None:
            raise ValueError("null is not allowed here; leave the option out instead")
        return value

    return field_validator(*fields, mode="before")(classmethod(refuse))


class Content(Node):
    """A content node; `device` is derived from the parent and rarely overridden."""

    device: str | None = None

    _not_null = _no_null("device")


# -- leaf contents -------------------------------------------------------------------------


class Filesystem(Content):
    type: Literal["filesystem"]
    format: str
    extraArgs: list[str] = Field(default_factory=list)  # noqa: N815
    mountOptions: list[str] = Field(default_factory=lambda: ["defaults"])  # noqa: N815
    mountpoint: AbsPath | None = None


class SwapFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: SwapFileSize
    path: str | None = None
    priority: int | None = None
    options: list[NonEmpty] = Field(default_factory=lambda: ["defaults"])


class BtrfsSubvolume(Node):
    type: Literal["btrfs_subvol"] = "btrfs_subvol"
    name: str | None = None
    extraArgs: list[str] = Field(default_factory=list)  # noqa: N815
    mountOptions: list[str] = Field(default_factory=lambda: ["defaults"])  # noqa: N815
    mountpoint: AbsPath | None = None
    swap: dict[str, SwapFile] = Field(default_factory=dict)


class Btrfs(Content):
    type: Literal["btrfs"]
    extraArgs: list[str] = Field(default_factory=list)  # noqa: N815
    mountOptions: list[str] = Field(default_factory=lambda: ["defaults"])  # noqa: N815
    mountpoint: AbsPath | None = None
    swap: dict[str, SwapFile] = Field(default_factory=dict)
    subvolumes: dict[str, BtrfsSubvolume] = Field(default_factory=dict)


class Zfs(Content):
    type: Literal["zfs"]
    pool: str


class LvmPv(Content):
    type: Literal["lvm_pv"]
    vg: str


class Mdraid(Content):
    type: Literal["mdraid"]
    name: str


class Bcachefs(Content):
    type: Literal["bcachefs"]
    filesystem: str
    label: str = ""
    extraFormatArgs: list[str] = Field(default_factory=list)  # noqa: N815


class Swap(Content):
    type: Literal["swap"]
    discardPolicy: Literal["once", "pages", "both"] | None = None  # noqa: N815
    extraArgs: list[str] = Field(default_factory=list)  # noqa: N815
    mountOptions: list[NonEmpty] = Field(default_factory=lambda: ["defaults"])  # noqa: N815
    priority: int | None = None
    randomEncryption: bool = False  # noqa: N815
    resumeDevice: bool = False  # noqa: N815


class Luks(Content):
    type: Literal["luks"]
    name: str
    passwordFile: AbsPath | None = None  # noqa: N815
    settings: dict[str, Any] = Field(default_factory=dict)
    askPassword: bool | None = None  # noqa: N815 (None: disko derives it)
    keyFile: AbsPath | None = None  # noqa: N815 (deprecated in disko)
    additionalKeyFiles: list[AbsPath] = Field(default_factory=list)  # noqa: N815
    extraFormatArgs: list[str] = Field(default_factory=list)  # noqa: N815
    extraOpenArgs: list[str] = Field(default_factory=list)  # noqa: N815
    initrdUnlock: bool = True  # noqa: N815
    enrollFido2: bool = False  # noqa: N815
    extraFido2EnrollArgs: list[str] = Field(default_factory=list)  # noqa: N815
    enrollRecovery: bool | None = None  # noqa: N815
    content: DeviceContent | None = None

    @property
    def asks_password(self) -> bool:
        if self.askPassword is not None:
            return self.askPassword
        return not (self.keyFile or self.passwordFile or self.settings.get("keyFile") or self.enrollFido2)


# -- partition tables ----------------------------------------------------------------------


class Hybrid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mbrPartitionType: str | None = None  # noqa: N815
    mbrBootableFlag: bool = False  # noqa: N815


class GptPartition(Node):
    name: str | None = None
    type: GptType | None = None  # the GPT type code; None: 8200 for swap, else 8300
    size: GptSize = "0"
    start: str = "0"
    end: str | None = None
    priority: int | None = None
    alignment: int | None = None
    label: str | None = None
    uuid: Guid | None = None
    attributes: list[int] = Field(default_factory=list)
    hybrid: Hybrid | None = None
    device: str | None = None
    content: PartitionContent | None = None

    _not_null = _no_null("name", "type", "end", "priority", "alignment", "label", "size", "start")


class Gpt(Content):
    type: Literal["gpt"]
    efiGptPartitionFirst: bool = True  # noqa: N815
    partitions: dict[str, GptPartition] = Field(default_factory=dict)


class TablePartition(Node):
    name: str | None = None
    part_type: Literal["primary", "logical", "extended"] = Field("primary", alias="part-type")
    fs_type: str | None = Field(None, alias="fs-type")
    start: str = "0%"
    end: str = "100%"
    flags: list[str] = Field(default_factory=list)
    bootable: bool = False
    content: PartitionContent | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Table(Content):
    """disko's legacy msdos/gpt table (deprecated by disko: read it, prefer gpt)."""

    type: Literal["table"]
    format: Literal["gpt", "msdos"] = "gpt"
    partitions: list[TablePartition] = Field(default_factory=list)


PartitionContent = Annotated[
    Filesystem | Btrfs | Zfs | Mdraid | Luks | LvmPv | Swap | Bcachefs, Field(discriminator="type")
]
DeviceContent = Annotated[
    Gpt | Table | Filesystem | Btrfs | Zfs | Mdraid | Luks | LvmPv | Swap | Bcachefs,
    Field(discriminator="type"),
]

# -- top-level devices ---------------------------------------------------------------------


class Disk(Node):
    type: Literal["disk"] = "disk"
    name: str | None = None
    device: AbsPath
    destroy: bool = True
    imageName: str | None = None  # noqa: N815
    imageSize: ImageSize | None = None  # noqa: N815
    content: DeviceContent | None = None

    _not_null = _no_null("name", "imageName", "imageSize")


class Mdadm(Node):
    type: Literal["mdadm"] = "mdadm"
    name: str | None = None
    level: int = 1
    metadata: Literal["1", "1.0", "1.1", "1.2", "default", "ddf", "imsm"] = "default"
    extraArgs: list[str] = Field(default_factory=list)  # noqa: N815
    content: DeviceContent | None = None


ZpoolMode = Literal["", "mirror", "raidz", "raidz1", "raidz2", "raidz3"]


class Vdev(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: ZpoolMode = ""
    members: list[str]


class Topology(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["topology"]
    vdev: list[Vdev] = Field(default_factory=list)
    spare: list[str] = Field(default_factory=list)
    log: list[Vdev] = Field(default_factory=list)
    dedup: list[Vdev] = Field(default_factory=list)
    special: list[Vdev] | Vdev | None = None
    cache: list[str] = Field(default_factory=list)


class TopologyMode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topology: Topology


class ZfsFs(Node):
    type: Literal["zfs_fs"]
    name: str | None = None
    options: dict[str, str] = Field(default_factory=dict)
    mountpoint: AbsPath | None = None
    mountOptions: list[str] = Field(default_factory=lambda: ["defaults"])  # noqa: N815


class ZfsVolume(Node):
    type: Literal["zfs_volume"]
    name: str | None = None
    options: dict[str, str] = Field(default_factory=dict)
    extraArgs: list[str] = Field(default_factory=list)  # noqa: N815
    size: str | None = None
    mountOptions: list[str] = Field(default_factory=lambda: ["defaults"])  # noqa: N815
    content: PartitionContent | None = None


Dataset = Annotated[ZfsFs | ZfsVolume, Field(discriminator="type")]


class Zpool(Node):
    type: Literal["zpool"] = "zpool"
    name: str | None = None
    mode: ZpoolMode | TopologyMode = ""
    options: dict[str, str] = Field(default_factory=dict)
    rootFsOptions: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    mountpoint: AbsPath | None = None
    mountOptions: list[str] = Field(default_factory=lambda: ["defaults"])  # noqa: N815
    datasets: dict[str, Dataset] = Field(default_factory=dict)


class LogicalVolume(Node):
    type: Literal["lvm_lv"] = "lvm_lv"
    name: str | None = None
    size: str
    lvm_type: Literal["mirror", "raid0", "raid1", "raid4", "raid5", "raid6", "thin-pool", "thinlv"] | None = None
    pool: str | None = None
    extraArgs: list[str] = Field(default_factory=list)  # noqa: N815
    priority: int | None = None
    content: PartitionContent | None = None


class LvmVg(Node):
    type: Literal["lvm_vg"]
    name: str | None = None
    lvs: dict[str, LogicalVolume] = Field(default_factory=dict)


class Nodev(Node):
    type: Literal["nodev"] = "nodev"
    fsType: str  # noqa: N815
    device: str | None = None
    mountpoint: AbsPath | None = None
    mountOptions: list[str] = Field(default_factory=lambda: ["defaults"])  # noqa: N815


class BcachefsSubvolume(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["bcachefs_subvolume"] = "bcachefs_subvolume"
    name: str | None = None
    mountpoint: AbsPath | None = None
    mountOptions: list[str] | None = None  # noqa: N815


class BcachefsFilesystem(Node):
    type: Literal["bcachefs_filesystem"]
    name: str | None = None
    extraFormatArgs: list[str] = Field(default_factory=list)  # noqa: N815
    mountOptions: list[str] = Field(default_factory=lambda: ["X-mount.mkdir"])  # noqa: N815
    mountpoint: AbsPath | None = None
    uuid: Guid | None = None
    passwordFile: AbsPath | None = None  # noqa: N815
    subvolumes: dict[str, BcachefsSubvolume] = Field(default_factory=dict)


Luks.model_rebuild()
GptPartition.model_rebuild()
TablePartition.model_rebuild()
Gpt.model_rebuild()
Disk.model_rebuild()
