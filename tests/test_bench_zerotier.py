"""ZeroTier identity generation time (`make bench`)."""

from __future__ import annotations

import pytest

from tests.tools import measure_isolated


@pytest.mark.bench
def test_python_identity_generation_takes_at_most_2_s_on_average():
    result = measure_isolated("zerotier")
    print(f"\nmean {result['python_mean_s']:.2f} s/identity, hash {result['hash_s']:.3f} s")
    assert result["python_mean_s"] <= 2.0
