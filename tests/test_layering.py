"""The dependency direction of DESIGN §1: spec and engines never import graph, cli or Pulumi."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fleet_sdk"
PULUMI_FREE = [
    "spec",
    "catalog",
    "disko",
    "sops",
    "errors.py",
    "stackconfig.py",
    "deploykey.py",
    "runner.py",
    "keys.py",
    "fsutil.py",
    "adminkey.py",
    "cloudsecrets.py",
    "ssh.py",
    "vars",
    "zerotier_admit.py",
]
FORBIDDEN = (
    "pulumi",
    "pulumi_hcloud",
    "pulumi_gcp",
    "pulumi_command",
    "pulumi_cloudflare",
    "fleet_sdk.graph",
    "fleet_sdk.cli",
    "fleet_sdk.testing",
    "fleet_sdk.review.plan",
)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_pure_layers_import_no_pulumi_graph_or_cli() -> None:
    files = [
        f
        for entry in PULUMI_FREE
        for f in ((PACKAGE / entry).rglob("*.py") if (PACKAGE / entry).is_dir() else [PACKAGE / entry])
    ]
    assert len(files) >= 8
    for f in files:
        bad = {m for m in imports(f) if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN)}
        assert not bad, f"{f.relative_to(PACKAGE)} imports {bad}"


def test_library_never_imports_the_cli() -> None:
    for f in PACKAGE.rglob("*.py"):
        if "cli" in f.relative_to(PACKAGE).parts or f.name == "__main__.py":
            continue
        assert not any(m.startswith("fleet_sdk.cli") for m in imports(f)), f
