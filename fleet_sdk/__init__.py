"""fleet_sdk: a fleet of Nix machines as one Pulumi graph.

A stack program imports what it needs from here: the spec (Fleet, Machine, …), the settings it is
built with, `deploy_fleet` and the exception tree rooted at FleetError.

Importing the package (or `fleet_sdk.spec`) does not import Pulumi; only `fleet_sdk.graph`,
`fleet_sdk.testing` and the `fleet plan` command do. So `deploy_fleet`, which lives in
fleet_sdk.graph, is imported on first access (module `__getattr__`).
"""

import importlib
import typing

from fleet_sdk.disko import DiskLayout
from fleet_sdk.errors import (
    BrokenMemberError,
    ClosureProbeError,
    ClosureUnknownError,
    CloudSecretError,
    CommandError,
    ConfigError,
    DamagedStoreError,
    DeployError,
    DeployKeyMissingError,
    DeployLockedError,
    DiskoError,
    DuplicateUrnError,
    EmptySecretError,
    FleetError,
    GeneratorError,
    HostKeyMismatchError,
    InstallError,
    LockError,
    MachineKeyChangedError,
    MacMismatchError,
    NixError,
    NoAdminKeyError,
    NoMatchingKeyError,
    NotASystemError,
    NotSopsDocumentError,
    PartitionFailedError,
    PartitionPlanError,
    PromptError,
    SecretLockedError,
    SecretNameError,
    SecretNotFoundError,
    SgdiskError,
    SopsError,
    SpecError,
    StackError,
    StoreLayoutError,
    SudoPasswordError,
    TamperedError,
    TargetUnreachableError,
    UnknownRecipientError,
    VarsWriteError,
    VarValueError,
    WipeRefusedError,
    ZeroTierError,
)
from fleet_sdk.spec import (
    Fleet,
    GcpHost,
    Generator,
    GeneratorFile,
    HetznerHost,
    Machine,
    Prompt,
    Role,
    ServiceInstance,
)
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.zerotier import service as _zerotier_service  # noqa: F401 (registers the built-in ZeroTier service)

if typing.TYPE_CHECKING:  # the type checker sees the real function; nothing is imported at runtime
    from fleet_sdk.graph import deploy_fleet

__version__ = "0.1.0"

# name -> the module that defines it, imported on first access because it imports Pulumi
_LAZY = {"deploy_fleet": "fleet_sdk.graph"}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fleet_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BrokenMemberError",
    "ClosureProbeError",
    "ClosureUnknownError",
    "CloudSecretError",
    "CommandError",
    "ConfigError",
    "DamagedStoreError",
    "DeployError",
    "DeployKeyMissingError",
    "DeployLockedError",
    "DiskLayout",
    "DiskoError",
    "DuplicateUrnError",
    "EmptySecretError",
    "Fleet",
    "FleetError",
    "GcpHost",
    "Generator",
    "GeneratorError",
    "GeneratorFile",
    "HetznerHost",
    "HostKeyMismatchError",
    "InstallError",
    "LockError",
    "MacMismatchError",
    "Machine",
    "MachineKeyChangedError",
    "NixError",
    "NoAdminKeyError",
    "NoMatchingKeyError",
    "NotASystemError",
    "NotSopsDocumentError",
    "PartitionFailedError",
    "PartitionPlanError",
    "Prompt",
    "PromptError",
    "Role",
    "SecretLockedError",
    "SecretNameError",
    "SecretNotFoundError",
    "ServiceInstance",
    "SgdiskError",
    "SopsError",
    "SpecError",
    "StackError",
    "StackSettings",
    "StoreLayoutError",
    "SudoPasswordError",
    "TamperedError",
    "TargetUnreachableError",
    "UnknownRecipientError",
    "VarValueError",
    "VarsWriteError",
    "WipeRefusedError",
    "ZeroTierError",
    "__version__",
    "deploy_fleet",
]
