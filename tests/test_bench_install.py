"""Install benchmark (bench/install.py): phase by phase against one nixos-anywhere run, resuming
after disko against a whole install, adopting an installed machine against installing it.

Run with `pytest -m bench tests/test_bench_install.py -s`; the default run deselects it (~40 s).
Needs root, sshd, util-linux and nix (the target-host harness); with CI=true their absence fails the
test, else it skips.
"""

from __future__ import annotations

import pytest

from tests.tools import load_bench_with_requirements, measure_isolated

# Targets. The harness's install takes seconds, so the fixed cost of a phase per run (a reconnect and
# a check each, ~0.5 s) weighs far more than against a real install of minutes: at most 2.5x here.
# A resume skips at least a third of the work; adopting costs at most a tenth of an install.
MAX_OVERHEAD = 2.5
MAX_RESUME_RATIO = 0.7
MAX_ADOPT_RATIO = 0.1


@pytest.mark.bench
def test_install_phase_by_phase_resume_and_adopt() -> None:
    bench = load_bench_with_requirements("install")
    result = measure_isolated("install", 2)
    table = bench.format_result(result)
    print("\n" + table)
    missed = []
    if result["overhead"] > MAX_OVERHEAD:
        missed.append(f"phase by phase is {result['overhead']:.2f}x one nixos-anywhere run (> {MAX_OVERHEAD})")
    if result["resume_ratio"] > MAX_RESUME_RATIO:
        missed.append(f"a resume costs {result['resume_ratio']:.2f} of an install (> {MAX_RESUME_RATIO})")
    if result["adopt_ratio"] > MAX_ADOPT_RATIO:
        missed.append(f"adopting costs {result['adopt_ratio']:.3f} of an install (> {MAX_ADOPT_RATIO})")
    assert not missed, "\n".join([*missed, table])
