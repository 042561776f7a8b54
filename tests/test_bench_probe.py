"""Closure probe benchmark: 8 machines from a warm cache against one cold `nix eval` per machine.

Run with `pytest -m bench tests/test_bench_probe.py -s`; the default run deselects it (about 10 s).
Needs nix (Debian's nix-bin) and git; with CI=true their absence fails the test, else it skips.
"""

from __future__ import annotations

import pytest

from tests.tools import load_bench, measure_isolated, require

# Target: the systems of 8 machines from a warm cache cost at most 5% of one machine's cold evaluation
# (FakeFlake's fake systems evaluate in tens of milliseconds; a real NixOS system takes seconds). The
# cold probe, one process for all 8, must cost less than the 8 processes it replaces.
MAX_WARM_PER_EVAL = 0.05
MAX_COLD_PER_EVALS = 1.0


@pytest.mark.bench
def test_a_warm_probe_against_one_cold_evaluation_per_machine():
    require(("nix", "nix-bin"), ("git", "git"))
    bench = load_bench("probe")
    result = measure_isolated("probe", 8)
    table = bench.format_result(result)
    print("\n" + table)
    missed = []
    if result["warm_per_eval"] > MAX_WARM_PER_EVAL:
        missed.append(f"warm probe {result['warm_per_eval']:.1%} of one evaluation > {MAX_WARM_PER_EVAL:.0%}")
    if result["cold_per_evals"] > MAX_COLD_PER_EVALS:
        missed.append(f"cold probe {result['cold_per_evals']:.0%} of 8 evaluations")
    assert not missed, "\n".join([*missed, table])
