"""Shared test helpers: real tools that must exist, and loading the benchmark scripts."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def require(*tools: tuple[str, str], find: Callable[[str], object] = shutil.which) -> None:
    """Each (tool, Debian package) must be found; in CI (CI=true) a missing one fails, never skips."""
    for tool, package in tools:
        if find(tool) is None:
            reason = f"{tool} not found (Debian package {package}; see scripts/system-deps)"
            if os.environ.get("CI") == "true":
                pytest.fail(f"{reason}; CI=true requires it")
            pytest.skip(reason)


def load_bench(name: str) -> ModuleType:
    """bench/<name>.py (a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
