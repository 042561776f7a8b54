"""vars benchmark: `fleet vars generate` for 100 machines against the clan way, one process per step,
for the built-in generators and for the same generators declared in the flake.

Run with `pytest -m bench tests/test_bench_vars.py -s`; the default run deselects it (it takes about 3 min).
Needs Debian's age, openssh-client, openssl, git, bash, nix-bin and bubblewrap; with CI=true their
absence fails the test, else it skips.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.tools import load_bench, measure_isolated

# Target: generating the vars of 100 machines at least 10 times faster than the clan way.
MIN_RATIO = 10.0
# Declared in the flake every generator is a sandboxed process on both sides (bwrap, bash and the
# tools its script starts: ssh-keygen, openssl …), so the generators' own work bounds the ratio: clan
# way / own work is ~3.4x on 2 cores (bench/vars.py prints it), whatever the engine does around them.
# What ours must reach: at least 2x the clan way with a warm evaluation cache, and within 1.5x of the
# generators' own work (its overhead: realising the finalScripts, encryption, the store, git).
MIN_FLAKE_RATIO = 2.0
MAX_FLAKE_OVERHEAD = 1.5


@pytest.mark.bench
def test_vars_generate_against_the_clan_way():
    bench = load_bench("vars")
    missing = [tool for tool in bench.TOOLS if shutil.which(tool) is None]
    if missing:
        reason = (
            f"missing tools: {', '.join(missing)} "
            "(Debian packages age, openssh-client, openssl, git, nix-bin, bubblewrap)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    result = measure_isolated("vars", 100)
    table = bench.format_result(result)
    print("\n" + table)
    missed = []
    if result["ratio"] < MIN_RATIO:
        missed.append(f"ours is less than {MIN_RATIO}x faster than the clan way")
    if result["flake_ratio"] < MIN_FLAKE_RATIO:
        missed.append(f"flake generators: ours is less than {MIN_FLAKE_RATIO}x faster than the clan way (warm cache)")
    if result["flake_ours_s"] > MAX_FLAKE_OVERHEAD * result["flake_own_s"]:
        missed.append(f"flake generators: ours takes more than {MAX_FLAKE_OVERHEAD}x the generators' own work")
    assert not missed, "\n".join([*missed, table])
