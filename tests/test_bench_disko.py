"""Layout checks against plan time for a 1000-machine fleet (`make bench`)."""

from __future__ import annotations

import pytest

from tests.tools import measure_isolated


@pytest.mark.bench
def test_layout_checks_cost_at_most_5_percent_of_the_plan():
    result = measure_isolated("disko")
    print(
        f"\ncheck {result['check_ms_per_machine']:.3f} ms/machine, plan {result['plan_ms_per_machine']:.3f} "
        f"ms/machine: {result['fraction']:.1%}"
    )
    assert result["fraction"] <= 0.05
