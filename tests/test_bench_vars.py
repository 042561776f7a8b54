"""vars benchmark: `fleet vars generate` for 100 machines against the clan way, one process per step as
clan's `clan vars generate` runs them (every generator in clan's bubblewrap sandbox, sops calls with age
standing in, `age-keygen -y` per secret, a `git add` per path and a diff and commit per generator, two
commits per machine key), for the built-in generators, the same generators declared in the flake, and
the acceptance test flake's generators scaled to 100 machines (bench/vars.py's docstring says exactly
what each way runs).

Run with `pytest -m bench tests/test_bench_vars.py -s`; the default run deselects it (about 4 min on 2 idle cores).
Needs Debian's age, openssh-client, openssl, git, bash, nix-bin and bubblewrap; with CI=true their
absence fails the test, else it skips.
"""

from __future__ import annotations

import pytest

from tests.tools import load_bench_with_requirements, measure_isolated

# Target: generating the vars of 100 machines at least 10 times faster than the clan way. The built-in
# generators are Python functions run in-process by ours, while the clan way runs each in its sandbox:
# 19x to 32x measured on 2 shared cores (five runs).
MIN_RATIO = 10.0
# Declared in the flake every generator is a sandboxed process on both sides (bwrap, bash and the tools
# its script starts), so the generators' own work bounds the ratio: clan way / own work was 4.9x to 8.0x
# for the realistic scripts (ssh-keygen, openssl) and 8x to 14x for the acceptance flake's printf
# scripts on 2 shared cores (bench/vars.py prints it), whatever the engine does around them: the
# issue's 10x is out of reach for the realistic scripts for any engine running them in the same
# sandbox. Measured, five runs: realistic scripts 4.4x to 7.1x warm, 4.8x to 6.1x cold; acceptance
# shapes 6.2x to 11.1x warm, 7.1x to 12.6x cold. What ours must reach, with margin for a noisy machine:
MIN_FLAKE_RATIO = 3.5  # realistic scripts, warm evaluation cache
MIN_ACCEPTANCE_RATIO = 4.5  # the acceptance flake's generators, warm evaluation cache
MIN_ACCEPTANCE_COLD_RATIO = 4.5  # the same, both ways evaluating the flake once
# and within 2x of the generators' own work (its overhead: realising the finalScripts, encryption, the
# store, git; 0.8x to 1.5x measured, ours and own work timed apart on a loaded machine); within 2.5x
# for the acceptance flake, whose printf scripts take ~7 ms each in the sandbox, so the same overhead
# weighs more (1.1x to 1.9x measured).
MAX_FLAKE_OVERHEAD = 2.0
MAX_ACCEPTANCE_OVERHEAD = 2.5


@pytest.mark.bench
def test_vars_generate_against_the_clan_way():
    bench = load_bench_with_requirements("vars")
    result = measure_isolated("vars", 100)
    table = bench.format_result(result)
    print("\n" + table)
    missed = []
    if result["ratio"] < MIN_RATIO:
        missed.append(f"ours is less than {MIN_RATIO}x faster than the clan way")
    if result["flake_ratio"] < MIN_FLAKE_RATIO:
        missed.append(f"flake generators: ours is less than {MIN_FLAKE_RATIO}x faster than the clan way (warm cache)")
    if result["acceptance_ratio"] < MIN_ACCEPTANCE_RATIO:
        missed.append(
            f"acceptance flake: ours is less than {MIN_ACCEPTANCE_RATIO}x faster than the clan way (warm cache)"
        )
    if result["acceptance_cold_ratio"] < MIN_ACCEPTANCE_COLD_RATIO:
        missed.append(
            f"acceptance flake: ours is less than {MIN_ACCEPTANCE_COLD_RATIO}x faster than the clan way (cold cache)"
        )
    for prefix, most in (("flake", MAX_FLAKE_OVERHEAD), ("acceptance", MAX_ACCEPTANCE_OVERHEAD)):
        if result[f"{prefix}_ours_s"] > most * result[f"{prefix}_own_s"]:
            missed.append(f"{prefix}: ours takes more than {most}x the generators' own work")
    # The clan way is what clan runs: every generator sandboxed, so it starts at least one process per
    # generator for the sandbox, one for the diff and one for the commit, plus one per stored file.
    for prefix in ("", "flake_", "acceptance_"):
        least = 3 * result[f"{prefix}generators"] + result[f"{prefix}files"]
        if result[f"{prefix}clan_processes"] < least:
            missed.append(f"{prefix or 'built-in '}clan way: fewer than {least} processes")
    assert not missed, "\n".join([*missed, table])
