"""vars benchmark: `fleet vars generate` for 100 machines against the clan way, one process per step.

Run with `pytest -m bench tests/test_bench_vars.py -s`; the default run deselects it (it takes 1 to 1.5 min).
Needs Debian's age, openssh-client, openssl, git and bash; with CI=true their absence fails the test,
else it skips.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.tools import load_bench, measure_isolated

# Target: generating the vars of 100 machines at least 10 times faster than the clan way.
MIN_RATIO = 10.0


@pytest.mark.bench
def test_vars_generate_against_the_clan_way():
    bench = load_bench("vars")
    missing = [tool for tool in bench.TOOLS if shutil.which(tool) is None]
    if missing:
        reason = f"missing tools: {', '.join(missing)} (Debian packages age, openssh-client, openssl, git)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    result = measure_isolated("vars", 100)
    table = bench.format_result(result)
    print("\n" + table)
    assert result["ratio"] >= MIN_RATIO, f"ours is less than {MIN_RATIO}x faster than the clan way\n{table}"
