"""The public API of `fleet_sdk`: the names a stack program imports, pinned, and one exception tree."""

from __future__ import annotations

import ast
import builtins
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import fleet_sdk
from fleet_sdk import errors
from fleet_sdk.errors import FleetError

PACKAGE = Path(fleet_sdk.__file__).parent

# Adding a name here is a promise to consumers; removing or renaming one breaks their stacks.
PUBLIC = [
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

# each exception's parent: the tree catchers rely on (a CloudSecretError is a ConfigError, …)
TREE = {
    "FleetError": "Exception",
    "SpecError": "FleetError",
    "ConfigError": "FleetError",
    "CloudSecretError": "ConfigError",
    "SecretNameError": "CloudSecretError",
    "SecretNotFoundError": "CloudSecretError",
    "SecretLockedError": "CloudSecretError",
    "StackError": "FleetError",
    "DuplicateUrnError": "StackError",
    "SopsError": "FleetError",
    "NotSopsDocumentError": "SopsError",
    "NoMatchingKeyError": "SopsError",
    "TamperedError": "SopsError",
    "MacMismatchError": "SopsError",
    "UnknownRecipientError": "SopsError",
    "EmptySecretError": "SopsError",
    "NoAdminKeyError": "SopsError",
    "BrokenMemberError": "SopsError",
    "MachineKeyChangedError": "FleetError",
    "DiskoError": "FleetError",
    "PartitionPlanError": "DiskoError",
    "PartitionFailedError": "DiskoError",
    "LockError": "FleetError",
    "GeneratorError": "FleetError",
    "PromptError": "FleetError",
    "VarValueError": "FleetError",
    "VarsWriteError": "FleetError",
    "StoreLayoutError": "FleetError",
    "DamagedStoreError": "FleetError",
    "DeployKeyMissingError": "FleetError",
    "ZeroTierError": "FleetError",
    "CommandError": "FleetError",
    "NixError": "FleetError",
    "SgdiskError": "FleetError",
    "DeployError": "FleetError",
    "TargetUnreachableError": "DeployError",
    "DeployLockedError": "DeployError",
    "SudoPasswordError": "DeployError",
    "NotASystemError": "DeployError",
    "ClosureProbeError": "FleetError",
    "ClosureUnknownError": "FleetError",
    "InstallError": "FleetError",
    "WipeRefusedError": "InstallError",
    "HostKeyMismatchError": "InstallError",
}

# FleetErrors still defined beside their tool, to move into fleet_sdk/errors.py (then drop them here)
OUTSIDE_ERRORS_PY: dict[str, set[str]] = {}


def exception_classes(namespace: dict[str, object]) -> dict[str, type[BaseException]]:
    return {n: v for n, v in namespace.items() if isinstance(v, type) and issubclass(v, BaseException)}


def test_public_names_are_pinned() -> None:
    assert sorted(fleet_sdk.__all__) == PUBLIC
    assert len(set(fleet_sdk.__all__)) == len(fleet_sdk.__all__)


def test_every_public_name_of_the_package_is_in_all() -> None:
    # submodules become attributes once imported; they are reached as fleet_sdk.<module>, not exported
    public = {n for n, v in vars(fleet_sdk).items() if not n.startswith("_") and not isinstance(v, ModuleType)}
    assert public <= set(fleet_sdk.__all__)


def test_every_name_in_all_resolves() -> None:
    for name in fleet_sdk.__all__:
        assert getattr(fleet_sdk, name) is not None, name
    from fleet_sdk.graph import deploy_fleet

    assert fleet_sdk.deploy_fleet is deploy_fleet
    assert "deploy_fleet" in dir(fleet_sdk)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = fleet_sdk.nothing


def test_every_exported_exception_is_a_fleet_error_in_the_pinned_tree() -> None:
    exported = exception_classes({n: getattr(fleet_sdk, n) for n in fleet_sdk.__all__})
    assert set(exported) == set(TREE)
    for name, cls in exported.items():
        assert issubclass(cls, FleetError), name
        assert [base.__name__ for base in cls.__bases__] == [TREE[name]], name


def test_every_fleet_error_of_the_package_is_exported() -> None:
    def subclasses(cls: type[FleetError]) -> set[type[FleetError]]:
        return {c for sub in cls.__subclasses__() for c in {sub} | subclasses(sub)}

    ours = {c.__name__ for c in subclasses(FleetError) if c.__module__.startswith("fleet_sdk.")}
    assert ours <= set(fleet_sdk.__all__)


def test_errors_module_holds_no_exception_outside_the_tree() -> None:
    defined = {n: c for n, c in exception_classes(vars(errors)).items() if c.__module__ == errors.__name__}
    assert len(defined) >= 30
    assert all(issubclass(c, FleetError) for c in defined.values()), defined


def test_exception_classes_are_defined_only_in_errors_py() -> None:
    # a class whose base is a builtin exception or one of the tree's is an exception class
    exception_names = set(exception_classes(vars(builtins))) | set(TREE)
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "errors.py":
            continue
        found = {
            node.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ClassDef)
            and any(
                (base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)) in exception_names
                for base in node.bases
            )
        }
        assert found == OUTSIDE_ERRORS_PY.get(rel, set()), f"{rel} defines {found}: move it to fleet_sdk/errors.py"


def test_importing_the_package_imports_no_pulumi() -> None:
    # a fresh interpreter: this one has imported Pulumi for other tests
    program = (
        "import sys, fleet_sdk\n"
        "print('pulumi' in sys.modules)\n"
        "deploy = fleet_sdk.deploy_fleet\n"
        "print('pulumi' in sys.modules, deploy.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["False", "True deploy_fleet"]
