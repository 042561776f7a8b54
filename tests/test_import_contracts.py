"""The import-linter contracts of pyproject.toml (DESIGN §1, README "Code map"): the tree keeps them, and
each one fails when a copy of the package gains the import it exists to stop."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {c["id"]: c for c in CONFIG["contracts"]}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports over the package under `root` with that root's pyproject.toml; no cache is written."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in CONTRACTS.values():
        assert f"{contract['name']} KEPT" in result.stdout


def test_the_tools_contract_forbids_every_package_but_errors() -> None:
    # forbidden contracts list what they forbid: this keeps the list whole as packages are added
    packages = {m.name for m in pkgutil.iter_modules([str(ROOT / "fleet_sdk")]) if m.ispkg}
    assert set(CONTRACTS["tools"]["forbidden_modules"]) == {f"fleet_sdk.{p}" for p in packages - {"tools"}}


# (contract id, file of the package, the import added to it)
BREAKS = [
    ("layers", "vars/store.py", "fleet_sdk.graph"),  # an engine reaching up into the graph
    ("layers", "spec/machine.py", "fleet_sdk.vars.store"),  # the pure spec importing an engine
    ("layers", "spec/disks/layout.py", "fleet_sdk.disko"),  # the pure layout model importing its engine
    ("layers", "spec/disks/checks.py", "fleet_sdk.tools.sgdisk"),  # the pure checks running a program
    ("layers", "sops/document.py", "fleet_sdk.review.plan"),
    ("tools", "tools/git.py", "fleet_sdk.catalog"),  # below spec in the layers, still not for tools
    ("pulumi", "tools/git.py", "pulumi"),
    ("pulumi", "review/plan.py", "pulumi_command"),  # review runs the offline runtime through graph only
    ("cli", "disko/layout.py", "fleet_sdk.cli"),
    ("testing", "graph/fleet.py", "fleet_sdk.testing"),
]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "fleet_sdk", tmp_path / "fleet_sdk", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(("contract", "file", "module"), BREAKS)
def test_a_forbidden_import_breaks_its_contract(copy: Path, contract: str, file: str, module: str) -> None:
    path = copy / "fleet_sdk" / file
    path.write_text(path.read_text() + f"\nimport {module}  # noqa\n")
    result = lint_imports(copy)
    assert result.returncode != 0
    assert f"{CONTRACTS[contract]['name']} BROKEN" in result.stdout, result.stdout
    importer = "fleet_sdk." + file.removesuffix(".py").replace("/", ".")
    assert importer in result.stdout


def test_a_package_outside_the_layers_breaks_them(copy: Path) -> None:
    # deny by default: a new package has no place until the layers contract gives it one
    (copy / "fleet_sdk" / "unplaced").mkdir()
    (copy / "fleet_sdk" / "unplaced" / "__init__.py").write_text("")
    result = lint_imports(copy)
    assert result.returncode != 0
    assert f"{CONTRACTS['layers']['name']} BROKEN" in result.stdout
    assert "fleet_sdk.unplaced" in result.stdout
