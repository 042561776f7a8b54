"""Disk-layout checks of a 1000-machine fleet, as a fraction of the plan time, in one run.

Every machine carries a ZFS layout (BIOS on cx43, UEFI on ccx23, alternating) that `fleet plan`
checks against its host (boot mode and disk size, with the sgdisk-exact partition plan). Printed:
check time per machine, plan time per machine (building the fleet, which runs the checks, plus
recording the graph under mocks) and their ratio. Target: checks cost at most 5% of the plan.

    python bench/disko.py
"""

from __future__ import annotations

import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fleet_sdk.disko import zfs_root
from fleet_sdk.graph import deploy_fleet
from fleet_sdk.spec import Fleet, HetznerHost, Machine
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import recorded_graph

N = 1000
HOSTS = [("cx43", "bios"), ("ccx23", "uefi")]


def make_repo(root: Path) -> Path:
    key = root / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)], check=True)
    value = root / "repo/vars/shared/deploy-key/id_ed25519.pub/value"
    value.parent.mkdir(parents=True)
    value.write_text(key.with_suffix(".pub").read_text())
    return root / "repo"


def machines(n: int) -> list[Machine]:
    out = []
    for i in range(n):
        server_type, boot = HOSTS[i % 2]
        out.append(
            Machine(
                name=f"m{i:04d}",
                host=HetznerHost(server_type=server_type, location="fsn1"),
                disks=zfs_root("/dev/sda", boot=boot),  # type: ignore[arg-type]
            )
        )
    return out


def measure(n: int = N, rounds: int = 2) -> dict[str, Any]:
    fleet_machines = machines(n)
    layouts = [(m.disks, m.shape.boot, m.disk_bytes) for m in fleet_machines]  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as tmp:
        settings = StackSettings(repo=make_repo(Path(tmp)))
        best_check = best_plan = float("inf")
        for _ in range(rounds):
            gc.collect()
            start = time.perf_counter()
            problems = sum(len(layout.check(boot=boot, disk_bytes=size)) for layout, boot, size in layouts)  # type: ignore[union-attr]
            best_check = min(best_check, time.perf_counter() - start)
            assert problems == 0
            gc.collect()
            start = time.perf_counter()
            fleet = Fleet(name="bench", machines=tuple(m.model_copy() for m in fleet_machines))
            graph = recorded_graph(lambda fleet=fleet: deploy_fleet(fleet, settings), preview=True, stack="bench")
            best_plan = min(best_plan, time.perf_counter() - start)
            assert len(graph.resources) == 2 * n + 4
    return {
        "machines": n,
        "check_ms_per_machine": best_check * 1000 / n,
        "plan_ms_per_machine": best_plan * 1000 / n,
        "fraction": best_check / best_plan,
    }


def main() -> int:
    r = measure()
    print(f"layout checks of {r['machines']} machines (best of 2, same run)")
    print(f"  check  {r['check_ms_per_machine']:.3f} ms/machine")
    print(f"  plan   {r['plan_ms_per_machine']:.3f} ms/machine")
    print(f"  check / plan = {r['fraction']:.1%} (target at most 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
