"""`fleet machine deploy` of 8 machines at once against one after the other, and the no-change deploy.

Every machine has a FakeTarget of its own (fleet_sdk.testing: a mount namespace with a real sshd on
127.0.0.1 and its own /nix store), a fake NixOS system built by the real nix (FakeFlake) and its age
key to upload. Deploys run `deploy_machines` as `fleet machine deploy` does, with the production
settings (DeploySettings(): the switch polled every second, real deadlines), real ssh and `nix copy`.

(a) Parallel against serial: the same requests (a new generation of every machine, its secrets
    unchanged) by one `deploy_machines(…, jobs=8)` and by `deploy_machines(…, jobs=1)`; each way
    starts from the generation the other left, so both copy one new toplevel per machine.
(b) No change: the whole fleet deployed again with its system and secrets current, as a deploy
    after `pulumi up` changed nothing: each machine's preflight finds it current and frees its lock.
    Per machine, against the budget of 300 ms; one machine at a time (jobs=1) as well, for scale.
(c) The closure probe: measured by bench/probe.py; its ratio has a slot here (closure_probe).

The ways run in the same process and run, interleaved (the order flips each round), best of ROUNDS;
only the ratios are meaningful, never a bare time on its own. Needs root, sshd, util-linux and nix
(fleet_sdk.testing.targethost.missing_requirements, scripts/system-deps).

    python bench/deploy.py [MACHINES] [ROUNDS]
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fleet_sdk import sops
from fleet_sdk.deploy import DeployRequest, DeployResult, DeploySettings, SecretFile, deploy_machines, scripts
from fleet_sdk.testing import FakeFlake, FakeSystem, FakeTarget, FakeTargets, RecordingRunner, nix_env
from fleet_sdk.testing.targethost import missing_requirements
from fleet_sdk.tools.runner import LOCAL

N = 8
JOBS = 8
# Best of 2 rounds: a round (8 serial deploys, 8 parallel, two no-change passes) takes ~17 s on 2
# cores, so the whole benchmark about 40 s with its set-up.
ROUNDS = 2
BUDGET_MS = 300.0  # a no-change deploy, per machine
SETTINGS = DeploySettings()  # production deadlines and poll interval: what a user's deploy waits
CORES = len(os.sched_getaffinity(0))
POLL = shlex.quote(scripts.POLL)  # as it stands in the ssh argv (deploy.remote.Remote.argv)


@contextlib.contextmanager
def nix_config() -> Iterator[None]:
    """NIX_CONFIG for the fake systems (Debian's Nix 2.8: flakes, no sandbox, no binary cache), which
    the engine's `nix copy` reads from the environment; restored afterwards."""
    before = os.environ.get("NIX_CONFIG")
    os.environ["NIX_CONFIG"] = nix_env()["NIX_CONFIG"]
    try:
        yield
    finally:
        if before is None:
            del os.environ["NIX_CONFIG"]
        else:
            os.environ["NIX_CONFIG"] = before


def check_requirements() -> None:
    reasons = missing_requirements() + ([] if shutil.which("nix") else ["nix not found (Debian package nix-bin)"])
    if reasons:
        raise RuntimeError("; ".join(reasons))


class Fleet:
    """n machines, each on its own target, with the systems of one generation built at a time."""

    def __init__(self, root: Path, n: int) -> None:
        self.names = [f"m{i:02d}" for i in range(n)]
        self.flake = FakeFlake(root / "flake", {name: FakeSystem(version="1") for name in self.names})
        self.hosts = FakeTargets(root / "targets")
        self.generation = 1
        self.targets: dict[str, FakeTarget] = {}
        # the machine's age key, as `fleet machine deploy` uploads it (deploy.sources.machine_secrets)
        self.secrets = {
            name: {f"{SETTINGS.secrets_root}/key.txt": SecretFile(sops.generate()[0].encode(), mode=0o600)}
            for name in self.names
        }

    def start(self) -> None:
        installed = self.flake.build_all()
        for name, target in zip(self.names, self.hosts(len(self.names)), strict=True):
            target.install(installed[name])
            self.targets[name] = target

    def next_generation(self) -> dict[str, str]:
        """Every machine's next system, built (not timed: a deploy is handed a built closure)."""
        self.generation += 1
        for name in self.names:
            self.flake.set(name, version=str(self.generation))
        return self.flake.build_all()

    def requests(self, systems: dict[str, str]) -> list[DeployRequest]:
        return [
            DeployRequest(
                name,
                t.target,
                systems[name],
                host_key=t.host_public_key,
                identity_file=t.client_key,
                secrets=self.secrets[name],
            )
            for name, t in self.targets.items()
        ]

    def deploy(self, systems: dict[str, str], jobs: int, expected: str) -> tuple[float, dict[str, float]]:
        """Seconds `deploy_machines` took for the whole fleet, and per machine what it ran and the CPU
        seconds it cost."""
        requests = self.requests(systems)
        runner = RecordingRunner(delegate=LOCAL)  # only to count the commands afterwards
        gc.collect()  # garbage of the previous run is not charged to this one
        there = target_cpu(self.targets.values())
        here = local_cpu()  # after the scan of /proc, so that is not counted
        start = time.perf_counter()
        results = deploy_machines(requests, SETTINGS, runner, jobs=jobs)
        seconds = time.perf_counter() - start
        here = local_cpu() - here
        there = target_cpu(self.targets.values()) - there
        self.check(results, systems, expected)
        n = len(requests)
        argvs = runner.argvs
        return seconds, {
            "ssh": sum(a[0] == "ssh" for a in argvs) / n,
            "nix": sum(a[0] == "nix" for a in argvs) / n,
            "polls": sum(POLL in a for a in argvs) / n,
            "cpu_here": here / n,
            "cpu_target": there / n,
        }

    def check(self, results: list[DeployResult], systems: dict[str, str], expected: str) -> None:
        """A run that failed a machine, or left one on another system, would make the times meaningless."""
        wrong = [f"{r.machine}: {r.status} {r.error or ''}" for r in results if r.status != expected]
        wrong += [
            f"{m}: runs {t.current_system()}" for m, t in self.targets.items() if t.current_system() != systems[m]
        ]
        if wrong:
            raise AssertionError(f"expected every machine {expected}:\n  " + "\n  ".join(wrong))

    def stop(self) -> None:
        self.hosts.stop_all()


def local_cpu() -> float:
    """CPU seconds of this process and its ended children (ssh, nix copy) so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def target_cpu(targets: Iterable[FakeTarget]) -> float:
    """CPU seconds the targets' processes (sshd, nix, the switch) used so far: each living process's own
    and its ended children's, which hold their own ended children's (a namespace's orphans end as
    children of its init, which lives as long as the target)."""
    ticks = 0
    for target in targets:
        for pid in target.processes():
            with contextlib.suppress(OSError):  # ended meanwhile: its time moved to its parent
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


# -- (c) the closure probe ---------------------------------------------------------------------------
# SLOT: bench/probe.py measures the closure probe; it is not duplicated here. To show its ratio beside
# these, return it from here as {"ratio": float, "what": str}; format_result prints it.


def closure_probe() -> dict[str, Any] | None:
    return None


# -- measuring ---------------------------------------------------------------------------------------


def measure(n: int = N, rounds: int = ROUNDS) -> dict[str, Any]:
    """Seconds for n machines deployed with JOBS jobs and with 1 (best of `rounds`), their ratio, and
    the no-change deploy's milliseconds per machine, both ways."""
    check_requirements()
    best = {"serial": float("inf"), "parallel": float("inf"), "same": float("inf"), "same_serial": float("inf")}
    counted: dict[str, dict[str, float]] = {}
    with nix_config(), tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Path(tmp), n)
        try:
            fleet.start()
            # Warm-up: the first deploy uploads every machine's key and puts the secrets' digest on it,
            # so the measured deploys copy and activate only, as a routine deploy does.
            fleet.deploy(fleet.next_generation(), JOBS, "deployed")
            for r in range(rounds):
                ways = [("serial", 1), ("parallel", JOBS)]
                for way, jobs in ways if r % 2 == 0 else ways[::-1]:
                    seconds, counts = fleet.deploy(fleet.next_generation(), jobs, "deployed")
                    if seconds < best[way]:
                        best[way], counted[way] = seconds, counts
                current = {name: t.current_system() or "" for name, t in fleet.targets.items()}
                for way, jobs in [("same", JOBS), ("same_serial", 1)]:
                    seconds, counts = fleet.deploy(current, jobs, "unchanged")
                    if seconds < best[way]:
                        best[way], counted[way] = seconds, counts
        finally:
            fleet.stop()
    same_ms, same_serial_ms = best["same"] * 1000 / n, best["same_serial"] * 1000 / n
    cpu = counted["parallel"]["cpu_here"] + counted["parallel"]["cpu_target"]
    # The most overlap can give here: n deploys need n * cpu seconds of CPU, spread at best over the
    # cores, and none ends sooner than one deploy alone.
    floor = max(n * cpu / min(CORES, JOBS), best["serial"] / n)
    return {
        "machines": n,
        "jobs": JOBS,
        "cores": CORES,
        "rounds": rounds,
        "poll_interval": SETTINGS.poll_interval,
        "serial_s": best["serial"],
        "parallel_s": best["parallel"],
        "speedup": best["serial"] / best["parallel"],
        "cpu_s": cpu,
        "ceiling": best["serial"] / floor,
        "per_deploy": counted["serial"],
        "per_deploy_parallel": counted["parallel"],
        "nochange_ms": same_ms,
        "nochange_ratio": same_ms / BUDGET_MS,
        "nochange_serial_ms": same_serial_ms,
        "nochange_serial_ratio": same_serial_ms / BUDGET_MS,
        "nochange_per_deploy": counted["same"],
        "probe": closure_probe(),
    }


def format_result(r: dict[str, Any]) -> str:
    n, jobs = r["machines"], r["jobs"]
    rows = [
        (f"parallel: deploy_machines(jobs={jobs})", r["parallel_s"], f"{r['speedup']:.1f}x"),
        ("serial: deploy_machines(jobs=1)", r["serial_s"], "1.0x"),
    ]
    c, cp, same = r["per_deploy"], r["per_deploy_parallel"], r["nochange_per_deploy"]
    cpu_ms = r["cpu_s"] * 1000
    wait = 1 - r["cpu_s"] / (r["serial_s"] / n)
    lines = [
        f"deploy: {n} machines, each on its own FakeTarget, production settings (switch polled every "
        f"{r['poll_interval']:g} s)",
        f"  best of {r['rounds']}, same run, interleaved",
        f"  {'way':<40} {'total s':>8} {'s/machine':>10} {'speed-up':>9}",
        *(f"  {way:<40} {s:>8.2f} {s / n:>10.2f} {x:>9}" for way, s, x in rows),
        f"  ratio serial / parallel: {r['speedup']:.1f}x (target >= 4x)",
        # what bounds the ratio: waiting overlaps, CPU does not
        f"  a deploy: {c['ssh']:.0f} ssh connections, {c['nix']:.0f} nix copy, switch polls {c['polls']:.1f} "
        f"serial and {cp['polls']:.1f} parallel (1: no poll interval waited)",
        f"    CPU {cpu_ms:.0f} ms ({cp['cpu_here'] * 1000:.0f} here, {cp['cpu_target'] * 1000:.0f} on its target): "
        f"{wait:.0%} of a serial deploy is waiting",
        f"    {n} deploys on {r['cores']} cores allow at most {r['ceiling']:.1f}x; reached "
        f"{r['speedup'] / r['ceiling']:.0%} of that",
        f"  no-change deploy of the fleet (jobs={jobs}): {r['nochange_ms']:.0f} ms/machine = "
        f"{r['nochange_ratio']:.2f}x the {BUDGET_MS:.0f} ms budget (target <= 1.0x)",
        f"  no-change deploy of one machine (jobs=1): {r['nochange_serial_ms']:.0f} ms/machine = "
        f"{r['nochange_serial_ratio']:.2f}x the budget ({same['ssh']:.0f} ssh connections)",
    ]
    probe = r.get("probe")
    lines.append(
        f"  closure probe: {probe['ratio']:.2f}x ({probe['what']})"
        if probe
        else "  closure probe: [slot: bench/probe.py measures it, not this file]"
    )
    return "\n".join(lines)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else N
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else ROUNDS
    print(format_result(measure(n, rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
