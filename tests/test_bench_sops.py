"""sops benchmark: 1,000 secrets encrypted and decrypted in-process against one `age` process per file.

Run with `pytest -m bench tests/test_bench_sops.py -s`; the default run deselects it (it takes ~30 s).
Needs Debian's `age` CLI (scripts/system-deps); with CI=true its absence fails the test, else it skips.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.tools import load_bench, measure_isolated

# Target: in-process encrypt+decrypt at least 20 times faster than one age process per file and step.
MIN_RATIO = 20.0


@pytest.mark.bench
def test_in_process_sops_against_one_process_per_file():
    if shutil.which("age") is None:
        reason = "age not found (Debian package age; see scripts/system-deps)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    bench = load_bench("sops")
    result = measure_isolated("sops", 1000)
    table = bench.format_result(result)
    print("\n" + table)
    assert result["ratio"] >= MIN_RATIO, f"in-process is less than {MIN_RATIO}x faster\n{table}"
