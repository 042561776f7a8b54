"""Closure probe: 8 machines' systems from a warm cache, against one cold `nix eval` per machine.

Per machine (the floor): one `nix eval --json <flake>#<toplevel> --apply 't: { drv = t.drvPath; out =
t.outPath; }'`, as `fleet machine deploy --build-on remote` ran it before the probe. Ours: the probe of
all 8 (fleet_sdk.deploy.probe), cold (one `nix eval` for all, after each machine's source changed) and
warm (the repository unchanged: the fingerprint and the cache file only). The flake is FakeFlake's
(fake NixOS and nix-darwin systems, no nixpkgs: an evaluation of a real NixOS system takes seconds,
these take tens of milliseconds, so the ratios here are the probe's worst case). Measured as a `path:`
flake (no process at all when warm) and as a git work tree (two `git` processes when warm), each
against one evaluation of that flake. The target (warm <= 5% of one cold evaluation) is on the path:
flake; the git flake's warm probe is about 3 ms, the cost of two processes, which is a few percent of
a fake system's evaluation and nothing against a real one.

Each round changes every machine first, so every evaluation is cold; the sides run interleaved, in
alternating order, in one process and one run. Only the ratios mean something, never a bare time.

    python bench/probe.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fleet_sdk.deploy.probe import Closure, probe_closures
from fleet_sdk.testing import FakeFlake, FakeSystem, nix_env
from fleet_sdk.tools import nix
from fleet_sdk.tools.runner import LOCAL

MACHINES = 8
ROUNDS = 5
WARM_REPEATS = 20
APPLY = "t: { drv = t.drvPath; out = t.outPath; }"


def classes(flake: FakeFlake) -> dict[str, Any]:
    return {m: "darwin" if s.darwin else "nixos" for m, s in flake.machines.items()}


def per_machine(flake: FakeFlake, ref: str) -> tuple[float, dict[str, Closure]]:
    """Seconds per machine of one `nix eval` each (the mean over the machines), and what they gave."""
    found, start = {}, time.perf_counter()
    for m in flake.machines:
        argv = ["nix", *nix.FLAKE_FEATURES, "eval", "--json", f"{ref}#{flake.attr(m)}", "--apply", APPLY]
        value = json.loads(LOCAL.run(argv, timeout=600).stdout)
        found[m] = Closure(m, value["drv"], value["out"])
    return (time.perf_counter() - start) / len(flake.machines), found


def probe(flake: FakeFlake, ref: str, cache: Path) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    found = probe_closures(LOCAL, ref, classes(flake), cache_home=cache)
    return time.perf_counter() - start, found


def warm(flake: FakeFlake, ref: str, cache: Path, expected: dict[str, Any]) -> float:
    best = float("inf")
    for _ in range(WARM_REPEATS):
        elapsed, found = probe(flake, ref, cache)
        if found != expected:
            raise AssertionError("a warm probe gave other systems than the cold one")
        best = min(best, elapsed)
    return best


def make_flakes(root: Path, n: int) -> tuple[FakeFlake, FakeFlake]:
    """The same fake fleet twice: a path: flake, and a git work tree with everything committed."""
    machines = {f"m{i}": FakeSystem(version=f"1.{i}", darwin=i % 4 == 3) for i in range(n)}
    path, git = FakeFlake(root / "path", machines), FakeFlake(root / "git", machines)
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "b"]):
        subprocess.run(["git", "-C", str(git.directory), *args], check=True, capture_output=True)
    return path, git


def one_round(path: FakeFlake, git: FakeFlake, cache: Path, r: int) -> dict[str, float]:
    for flake in (path, git):
        for m in flake.machines:
            flake.set(m, extra=f"round {r}")  # a new source: nothing is cached anywhere
    if r % 2:
        probe_cold, probed = probe(path, path.ref, cache)
        floor, evaluated = per_machine(path, path.ref)
    else:
        floor, evaluated = per_machine(path, path.ref)
        probe_cold, probed = probe(path, path.ref, cache)
    if probed != evaluated:
        raise AssertionError("the probe and `nix eval` disagree")
    git_floor, git_evaluated = per_machine(git, str(git.directory))
    _, git_probed = probe(git, str(git.directory), cache)
    if git_probed != git_evaluated:
        raise AssertionError("the probe and `nix eval` disagree on the git flake")
    return {
        "eval_s": floor,
        "git_eval_s": git_floor,
        "probe_cold_s": probe_cold,
        "probe_warm_s": warm(path, path.ref, cache, probed),
        "git_warm_s": warm(git, str(git.directory), cache, git_probed),
    }


def measure(machines: int = MACHINES, rounds: int = ROUNDS) -> dict[str, Any]:
    """Medians over the rounds of each side's time, and the ratios the targets are on."""
    os.environ["NIX_CONFIG"] = nix_env()["NIX_CONFIG"]
    with tempfile.TemporaryDirectory() as tmp:
        path, git = make_flakes(Path(tmp), machines)
        cache = Path(tmp) / "cache"
        one_round(path, git, cache, -1)  # warm-up: the fetcher, the first store writes, imports
        rows = [one_round(path, git, cache, r) for r in range(rounds)]
    median = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
    return {
        "machines": machines,
        "rounds": rounds,
        **median,
        "warm_per_eval": median["probe_warm_s"] / median["eval_s"],
        "git_warm_per_eval": median["git_warm_s"] / median["git_eval_s"],
        "cold_per_evals": median["probe_cold_s"] / (median["eval_s"] * machines),
    }


def format_result(r: dict[str, Any]) -> str:
    n = r["machines"]
    return "\n".join(
        [
            f"closure probe, {n} machines, medians of {r['rounds']} rounds (one run, interleaved)",
            f"  one cold `nix eval` per machine   {r['eval_s'] * 1000:8.2f} ms each",
            f"  probe, cold (one nix eval)        {r['probe_cold_s'] * 1000:8.2f} ms for {n}: "
            f"{r['cold_per_evals']:.0%} of {n} evaluations",
            f"  probe, warm, path: flake          {r['probe_warm_s'] * 1000:8.2f} ms for {n}: "
            f"{r['warm_per_eval']:.1%} of one evaluation (target <= 5%)",
            f"  one cold `nix eval`, git flake    {r['git_eval_s'] * 1000:8.2f} ms each",
            f"  probe, warm, git work tree        {r['git_warm_s'] * 1000:8.2f} ms for {n}: "
            f"{r['git_warm_per_eval']:.1%} of one evaluation of the git flake (two git processes)",
        ]
    )


def main() -> int:
    print(format_result(measure()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
