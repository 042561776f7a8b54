"""ZeroTier identity generation time (`make bench`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "zerotier.py"


@pytest.mark.bench
def test_python_identity_generation_takes_at_most_2_s_on_average():
    spec = importlib.util.spec_from_file_location("bench_zerotier", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.measure()
    print(f"\nmean {result['python_mean_s']:.2f} s/identity, hash {result['hash_s']:.3f} s")
    assert result["python_mean_s"] <= 2.0
