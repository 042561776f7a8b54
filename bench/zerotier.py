"""ZeroTier identity generation: the mean over 10 new identities with the Python path (all cores;
the swap loop compiled by numba when it is installed, as requirements.txt installs it),
next to the cost of one memory-hard hash measured in the same run (generation needs about 15 hashes
on average: 256/17), and `zerotier-idtool generate` when it is installed. Target: at most 2 s per
identity on this machine.

    python bench/zerotier.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

from fleet_sdk.zerotier.identity import Identity, _memory_hard

N = 10
EXPECTED_TRIES = 256 / 17


def measure(n: int = N) -> dict[str, Any]:
    os.environ["FLEET_ZEROTIER_PYTHON"] = "1"  # the Python path even where zerotier-idtool exists
    Identity.generate()  # warm-up: imports, the first fork
    times = []
    for _ in range(n):
        start = time.perf_counter()
        identity = Identity.generate()
        times.append(time.perf_counter() - start)
        assert identity.validate()
    hashes, plain = [], []
    for _ in range(5):
        start = time.perf_counter()
        _memory_hard(os.urandom(64))
        hashes.append(time.perf_counter() - start)
        start = time.perf_counter()
        _memory_hard(os.urandom(64), compiled=False)  # the loop without numba
        plain.append(time.perf_counter() - start)
    result: dict[str, Any] = {
        "identities": n,
        "python_mean_s": statistics.mean(times),
        "python_max_s": max(times),
        "hash_s": min(hashes),
        "plain_hash_s": min(plain),
        "cores": os.cpu_count() or 1,
        "idtool_mean_s": None,
    }
    if shutil.which("zerotier-idtool"):
        idtool = []
        for _ in range(n):
            start = time.perf_counter()
            subprocess.run(["zerotier-idtool", "generate"], capture_output=True, check=True)
            idtool.append(time.perf_counter() - start)
        result["idtool_mean_s"] = statistics.mean(idtool)
    return result


def main() -> int:
    r = measure()
    expected = r["hash_s"] * EXPECTED_TRIES / r["cores"]
    print(f"ZeroTier identity generation, {r['identities']} identities, same run")
    print(
        f"  one memory-hard hash        {r['hash_s']:.3f} s "
        f"(the plain Python loop without numba: {r['plain_hash_s']:.3f} s, {r['plain_hash_s'] / r['hash_s']:.1f}x)"
    )
    print(
        f"  python path, mean           {r['python_mean_s']:.2f} s/identity (max {r['python_max_s']:.2f} s), "
        f"{r['python_mean_s'] / expected:.2f}x the expected {expected:.2f} s "
        f"({EXPECTED_TRIES:.1f} hashes over {r['cores']} cores)"
    )
    print(f"  target 2 s: python mean is {r['python_mean_s'] / 2:.0%} of it")
    if r["idtool_mean_s"] is None:
        print("  zerotier-idtool             not installed here")
    else:
        print(
            f"  zerotier-idtool, mean       {r['idtool_mean_s']:.2f} s/identity "
            f"(python / idtool = {r['python_mean_s'] / r['idtool_mean_s']:.1f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
