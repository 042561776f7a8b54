"""Plan-time benchmark: our graph against bare pulumi_hcloud servers under the same mocks.

Run with `pytest -m bench tests/test_bench_plan.py -s`; the default run deselects it (it takes ~30 s).
"""

from __future__ import annotations

import pytest

from tests.tools import load_bench, measure_isolated

# Targets: at most half again the bare-Pulumi cost per machine, and linear from 100 to 1000 machines.
# Pulumi's runtime itself is not linear (the floor's per-machine time grows 1.3-1.9x from 100 to 1000:
# its output wait loop and the garbage collector), so linearity is judged against the floor's growth:
# our per-machine time may grow at most 20% more than the floor's does.
MAX_RATIO = 1.5
MAX_EXTRA_GROWTH = 1.2


@pytest.mark.bench
def test_plan_time_against_bare_pulumi():
    bench = load_bench("plan")
    rows = measure_isolated("plan", [10, 100, 1000])
    table = bench.format_table(rows)
    print("\n" + table)
    by_size = {r["machines"]: r for r in rows}
    # Every missed target at once, so one slow run shows the whole picture.
    missed = [
        f"{n} machines: ours/floor {by_size[n]['ratio']:.2f} > {MAX_RATIO}"
        for n in (100, 1000)
        if by_size[n]["ratio"] > MAX_RATIO
    ]
    growth = bench.linearity(rows) / bench.linearity(rows, side="floor")
    if growth > MAX_EXTRA_GROWTH:
        missed.append(f"our per-machine time grows {growth:.2f}x the floor's from 100 to 1000 (> {MAX_EXTRA_GROWTH})")
    assert not missed, "\n".join([*missed, table])


# `fleet plan --against` of two 1000-machine plans: at most a fifth of making one plan
MAX_DIFF_RATIO = 0.2


@pytest.mark.bench
def test_diff_of_two_plans_against_making_one():
    bench = load_bench("plan")
    row = measure_isolated("plan", [1000], "diff")
    print("\n" + bench.format_diff(row))
    assert row["ratio"] <= MAX_DIFF_RATIO, bench.format_diff(row)
