"""Shared test helpers: real tools that must exist, and loading the benchmark scripts."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

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


def load_bench_with_requirements(name: str) -> ModuleType:
    """bench/<name>.py, once its `check_requirements()` passes: what it lacks fails the test with
    CI=true (a missing tool is a failure there) and skips it elsewhere."""
    bench = load_bench(name)
    try:
        bench.check_requirements()
    except RuntimeError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(str(e))
        pytest.skip(str(e))
    return bench


def measure_isolated(name: str, *args: Any) -> Any:
    """bench/<name>.py's `measure(*args)` in a fresh interpreter: a benchmark run inside the test
    process would time the garbage collector walking every earlier test's objects, and the threads
    earlier benchmarks left (Pulumi's mock runtime), not only the code measured."""
    code = (
        "import json, sys\n"
        "from tests.tools import load_bench\n"
        f"result = load_bench({name!r}).measure(*json.loads(sys.argv[1]))\n"
        "print('\\n' + json.dumps(result))\n"
    )
    root = BENCH.parent
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(args))], cwd=root, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"bench/{name}.py failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
