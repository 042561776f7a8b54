"""Offline plan time of a synthetic Hetzner fleet, against the bare-Pulumi floor.

Ours: build and validate a `Fleet` of N Hetzner machines, then record `deploy_fleet(fleet, settings)`
under the mock runtime (`fleet_sdk.testing.recorded_graph`, preview), as `fleet plan` does.
Floor: one program registering N plain `pulumi_hcloud.Server` resources through the same
`recorded_graph`, i.e. what any Pulumi program with N servers pays under these mocks.

Both are measured in the same process and run, interleaved, so machine noise hits both; only the
ratio ours/floor and the per-machine scaling are meaningful, never a bare time on its own.

The diff (`fleet plan --against`): `diff_plans` of two recorded 1000-machine plan documents (the head
resizes every tenth server, moves every fiftieth and adds ten machines) against making one such plan
document (the Fleet, the recorded graph with its subjects, `plan_document` with the repository), best
of three each, interleaved. Only the ratio diff/plan is meaningful.

    python bench/plan.py
"""

from __future__ import annotations

import gc
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi_hcloud as hcloud

from fleet_sdk.graph import deploy_fleet
from fleet_sdk.graph.steps import collect_subjects
from fleet_sdk.review.diff import diff_plans
from fleet_sdk.review.plan import plan_document
from fleet_sdk.spec import Fleet, HetznerHost, Machine
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import recorded_graph

SIZES = (10, 100, 1000)
# Best-of-N: the minimum is the least noisy estimate of what the code costs on a shared machine.
REPEATS = {10: 7, 100: 7, 1000: 3}
# The shared resources ours adds beside the machines: Fleet, hetzner Cloud, SshKey, Firewall.
SHARED = 4


def make_repo(root: Path) -> Path:
    """A fleet repository holding a real deploy key's public half, as `fleet vars generate` leaves it."""
    key = root / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)], check=True)
    value = root / "repo" / "vars" / "shared" / "deploy-key" / "id_ed25519.pub" / "value"
    value.parent.mkdir(parents=True)
    value.write_text(key.with_suffix(".pub").read_text())
    return root / "repo"


def ours(n: int, settings: StackSettings) -> int:
    # Building the Fleet runs its validation, which is part of what a plan costs us.
    fleet = Fleet(
        name="bench",
        machines=tuple(
            Machine(name=f"m{i:04d}", tags=("nixos",), host=HetznerHost(server_type="cx23", location="fsn1"))
            for i in range(n)
        ),
    )
    graph = recorded_graph(lambda: deploy_fleet(fleet, settings), preview=True, project="fleet", stack="bench")
    return len(graph.resources)


def floor(n: int) -> int:
    def program() -> list[hcloud.Server]:
        return [hcloud.Server(f"m{i:04d}", server_type="cx23", image="debian-12", location="fsn1") for i in range(n)]

    graph = recorded_graph(program, preview=True, project="fleet", stack="bench")
    return len(graph.resources)


def _timed(run: Callable[[], int], expected: int) -> float:
    # Collect the previous run's garbage first; GC pauses during the run are part of its cost.
    gc.collect()
    start = time.perf_counter()
    count = run()
    elapsed = time.perf_counter() - start
    # A run that registered the wrong graph would make the comparison meaningless.
    if count != expected:
        raise AssertionError(f"expected {expected} resources, recorded {count}")
    return elapsed


def measure(sizes: tuple[int, ...] = SIZES, what: str = "plan") -> Any:
    """Per size: ms per machine for ours and the floor (best of REPEATS) and their ratio; with
    what="diff", `measure_diff` of the first size instead."""
    if what == "diff":
        return measure_diff(sizes[0])
    with tempfile.TemporaryDirectory() as tmp:
        settings = StackSettings(repo=make_repo(Path(tmp)))
        # Warm-up: imports, pydantic/grpc lazy set-up and the first event loop are not per-plan costs.
        ours(5, settings)
        floor(5)
        rows = []
        for n in sizes:
            best_ours = best_floor = float("inf")
            for _ in range(REPEATS.get(n, 2)):
                # Interleaved, so a slow spell of the machine hits both sides.
                best_ours = min(best_ours, _timed(lambda n=n: ours(n, settings), 2 * n + SHARED))
                best_floor = min(best_floor, _timed(lambda n=n: floor(n), n))
            rows.append(
                {
                    "machines": n,
                    "ours_ms_per_machine": best_ours * 1000 / n,
                    "floor_ms_per_machine": best_floor * 1000 / n,
                    "ratio": best_ours / best_floor,
                }
            )
    return rows


def fleet_of(n: int, head: bool = False) -> Fleet:
    """N Hetzner machines; the head resizes every tenth server, moves every fiftieth to another
    location and adds ten machines."""

    def host(i: int) -> HetznerHost:
        server_type = "cx33" if head and i % 10 == 0 else "cx23"
        return HetznerHost(server_type=server_type, location="nbg1" if head and i % 50 == 1 else "fsn1")

    count = n + 10 if head else n
    machines = tuple(Machine(name=f"m{i:04d}", tags=("nixos",), host=host(i)) for i in range(count))
    return Fleet(name="bench", machines=machines)


def plan_doc(n: int, settings: StackSettings, head: bool = False) -> dict[str, Any]:
    """A plan document as `fleet plan` makes it (without the closure probe: no flake here)."""
    fleet = fleet_of(n, head)
    with collect_subjects() as subjects:
        graph = recorded_graph(lambda: deploy_fleet(fleet, settings), preview=True, project="fleet", stack="bench")
    return plan_document(fleet, graph, None, settings.repo, subjects)


def measure_diff(n: int = 1000, repeats: int = 3) -> dict[str, Any]:
    """Seconds to make one n-machine plan document and to diff two of them (best of `repeats`)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = StackSettings(repo=make_repo(Path(tmp)))
        plan_doc(5, settings)  # warm-up
        base = plan_doc(n, settings)
        head = plan_doc(n, settings, head=True)
        best_plan = best_diff = float("inf")
        for _ in range(repeats):
            gc.collect()
            start = time.perf_counter()
            plan_doc(n, settings, head=True)
            best_plan = min(best_plan, time.perf_counter() - start)
            gc.collect()
            start = time.perf_counter()
            diff = diff_plans(base, head)
            best_diff = min(best_diff, time.perf_counter() - start)
    # ten machines of two resources each, every tenth server resized, every fiftieth moved
    expected = {"create": 20, "update": n // 10, "replace": n // 50}
    got = {op: diff["summary"][op] for op in expected}
    if got != expected:  # a diff that saw something else would time something else
        raise AssertionError(f"expected {expected}, got {got}")
    return {"machines": n, "plan_s": best_plan, "diff_s": best_diff, "ratio": best_diff / best_plan, "summary": got}


def format_diff(row: dict[str, Any]) -> str:
    return (
        f"diff of two {row['machines']}-machine plans: {row['diff_s']:.3f} s, one plan {row['plan_s']:.3f} s, "
        f"diff/plan {row['ratio']:.3f}  ({row['summary']})"
    )


def linearity(rows: list[dict[str, Any]], small: int = 100, large: int = 1000, side: str = "ours") -> float:
    """Per-machine time at `large` over that at `small` (`side` "ours" or "floor"): 1.0 is linear."""
    per = {r["machines"]: r[f"{side}_ms_per_machine"] for r in rows}
    return float(per[large] / per[small])


def format_table(rows: list[dict[str, Any]]) -> str:
    """The measured rows, each bare time beside the floor's and the ratio, then the linearity."""
    lines = [f"{'machines':>8}  {'ours ms/machine':>15}  {'floor ms/machine':>16}  {'ours/floor':>10}"]
    for r in rows:
        lines.append(
            f"{r['machines']:>8}  {r['ours_ms_per_machine']:>15.3f}  "
            f"{r['floor_ms_per_machine']:>16.3f}  {r['ratio']:>10.2f}"
        )
    if {100, 1000} <= {r["machines"] for r in rows}:
        # The floor's own growth shows how much of ours is the Pulumi runtime's rather than the SDK's.
        lines.append(
            f"linearity (ms/machine at 1000 / at 100): ours {linearity(rows):.2f}, "
            f"floor {linearity(rows, side='floor'):.2f}, "
            f"ours/floor {linearity(rows) / linearity(rows, side='floor'):.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    print(format_table(measure()))
    print(format_diff(measure_diff()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
