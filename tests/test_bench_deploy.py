"""Deploy benchmark: 8 machines at once against one after the other, and the no-change deploy, each
machine on its own target host (bench/deploy.py).

Run with `pytest -m bench tests/test_bench_deploy.py -s`; the default run deselects it (it takes ~45 s).
Needs root, sshd, util-linux and nix (the target-host harness); with CI=true their absence fails the
test, else it skips.
"""

from __future__ import annotations

import pytest

from tests.tools import load_bench_with_requirements, measure_isolated

# Targets: deploying 8 machines at once at least 4 times faster than one after the other, and a
# deploy of the fleet that changes nothing at most 300 ms per machine (bench/deploy.py BUDGET_MS).
MIN_SPEEDUP = 4.0
MAX_NOCHANGE_RATIO = 1.0


@pytest.mark.bench
def test_deploy_concurrency_and_the_no_change_deploy() -> None:
    bench = load_bench_with_requirements("deploy")
    result = measure_isolated("deploy", 8)
    table = bench.format_result(result)
    print("\n" + table)
    # every missed target at once, so one slow run shows the whole picture
    missed = []
    if result["speedup"] < MIN_SPEEDUP:
        missed.append(f"8 machines at once are {result['speedup']:.1f}x faster than serial, not {MIN_SPEEDUP}x")
    if result["nochange_ratio"] > MAX_NOCHANGE_RATIO:
        missed.append(
            f"the no-change deploy takes {result['nochange_ms']:.0f} ms per machine (> {bench.BUDGET_MS:.0f})"
        )
    assert not missed, "\n".join([*missed, table])
