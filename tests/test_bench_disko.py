"""Layout checks against plan time for a 1000-machine fleet (`make bench`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "disko.py"


@pytest.mark.bench
def test_layout_checks_cost_at_most_5_percent_of_the_plan():
    spec = importlib.util.spec_from_file_location("bench_disko", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.measure()
    print(
        f"\ncheck {result['check_ms_per_machine']:.3f} ms/machine, plan {result['plan_ms_per_machine']:.3f} "
        f"ms/machine: {result['fraction']:.1%}"
    )
    assert result["fraction"] <= 0.05
