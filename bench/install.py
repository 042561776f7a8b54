"""`fleet machine install` (fleet_sdk.install) against a fresh debian target host, measured side by side:

(a) Phase by phase against one shot: our install (nixos-anywhere once per phase, a checkpoint after
    each, the facts before, nixos-facter before disko, the strict host key check after the reboot)
    against one bare `nixos-anywhere` run with every phase on an equal fresh target: what resuming
    and checking cost.
(b) Resume against start over: a run that died in the install phase, resumed (install, reboot), against
    a whole install: what the checkpoint saves.
(c) Adopt against install: the same command on a machine that runs it already (one ssh connection,
    nothing run), against a whole install: what `pulumi up` costs for servers already installed.

Each target is a FakeTarget (fleet_sdk.testing: a namespace with a real sshd and its own /nix store),
nixos-anywhere the test shim (fleet_sdk.testing.targethost.installer: real ssh, real `nix copy`, the
reboot into the installed system), the system a FakeFlake's. The ways run interleaved in the same
process, best of ROUNDS; only the ratios are meaningful.

    python bench/install.py [ROUNDS]
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleet_sdk.install import InstallRequest, InstallSettings, install_machine
from fleet_sdk.install.checkpoint import Checkpoint
from fleet_sdk.install.records import layout_digest
from fleet_sdk.testing import FakeFlake, FakeSystem, FakeTarget, nix_env
from fleet_sdk.testing.targethost import keygen, missing_requirements, write_nixos_anywhere_shim
from fleet_sdk.tools.nixos_anywhere import PHASES, Install, argv

ROUNDS = 2
SETTINGS = InstallSettings(timeout=30, poll=0.2)
LAYOUT = '{"disko": "bench"}\n'


def check_requirements() -> None:
    reasons = missing_requirements() + ([] if shutil.which("nix") else ["nix not found (Debian package nix-bin)"])
    if reasons:
        raise RuntimeError("; ".join(reasons))


@contextlib.contextmanager
def environment(root: Path) -> Iterator[Path]:
    """The shim first on PATH, NIX_CONFIG for the fake systems, a private state folder; restored after."""
    shim = write_nixos_anywhere_shim(root / "bin", root / "nixos-anywhere.jsonl", timeout=30)
    saved = {k: os.environ.get(k) for k in ("PATH", "NIX_CONFIG", "XDG_STATE_HOME")}
    os.environ.update(
        PATH=f"{shim.parent}:{os.environ['PATH']}",
        NIX_CONFIG=nix_env()["NIX_CONFIG"],
        XDG_STATE_HOME=str(root / "state"),
    )
    try:
        yield shim
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.flake = FakeFlake(root / "flake", {"web": FakeSystem(version="1")})
        self.flake.build("web")
        self.client = keygen(root / "client" / "id_ed25519")
        host = keygen(root / "host" / "ssh_host_ed25519_key")
        self.host_pair = (host.read_bytes(), Path(f"{host}.pub").read_bytes())
        self.repo = root / "repo"
        subprocess.run(["git", "init", "-q", str(self.repo)], check=True)
        self.n = 0

    def target(self) -> FakeTarget:
        self.n += 1
        return FakeTarget(self.root / f"t{self.n}", name="web", os_kind="debian", client_key=self.client,
                          reboot_delay=0.05).start()  # fmt: skip

    def request(self, t: FakeTarget, phases: tuple[str, ...] = PHASES) -> InstallRequest:
        return InstallRequest(
            machine="web",
            target=t.target,
            flake=self.flake.ref,
            repo=self.repo,
            host_key=self.host_pair[1].decode().strip(),
            host_key_pair=self.host_pair,
            layout=LAYOUT,
            identity_file=self.client,
            phases=phases,
        )

    def ours(self, t: FakeTarget) -> float:
        started = time.perf_counter()
        result = install_machine(self.request(t), SETTINGS)
        took = time.perf_counter() - started
        assert result.status == "installed", result.error
        return took

    def one_shot(self, t: FakeTarget) -> float:
        request = Install(self.flake.ref, "web", t.target, identity_file=self.client)
        started = time.perf_counter()
        subprocess.run(argv(request), check=True, capture_output=True)
        t.wait_for_boot(3, timeout=30)  # kexec, then the installed system: the second reboot
        took = time.perf_counter() - started
        assert t.current_system() == self.flake.out_path("web")
        return took

    def resumed(self, t: FakeTarget) -> float:
        """A run that died in the install phase: kexec and disko ran and are checkpointed."""
        done = install_machine(self.request(t, ("kexec", "disko")), SETTINGS)
        assert done.status == "partial", done.error
        assert Checkpoint.load(self.repo, "web", t.target, layout_digest(LAYOUT)).done == ["kexec", "disko"]
        return self.ours(t)

    def adopt(self, t: FakeTarget) -> float:
        started = time.perf_counter()
        result = install_machine(self.request(t), SETTINGS)
        took = time.perf_counter() - started
        assert result.status == "adopted", result.error
        return took


def measure(rounds: int = ROUNDS) -> dict[str, Any]:
    check_requirements()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-install-") as tmp, environment(Path(tmp)):
        bench = Bench(Path(tmp))
        best: dict[str, float] = {}
        for n in range(rounds):
            order = ["ours", "one_shot", "resumed"] if n % 2 == 0 else ["resumed", "one_shot", "ours"]
            for way in order:
                t = bench.target()
                try:
                    best[way] = min(best.get(way, float("inf")), getattr(bench, way)(t))
                    if way == "ours":
                        best["adopt"] = min(best.get("adopt", float("inf")), bench.adopt(t))
                finally:
                    t.stop()
    return {
        "rounds": rounds,
        "seconds": best,
        "overhead": best["ours"] / best["one_shot"],
        "resume_ratio": best["resumed"] / best["ours"],
        "adopt_ratio": best["adopt"] / best["ours"],
    }


def format_result(r: dict[str, Any]) -> str:
    s = r["seconds"]
    return "\n".join([
        f"install, best of {r['rounds']} rounds (fresh debian target, nixos-anywhere shim):",
        f"  phase by phase (ours) / one nixos-anywhere run: {r['overhead']:.2f}"
        f"  ({s['ours']:.2f} s / {s['one_shot']:.2f} s)",
        f"  resumed after disko / whole install:            {r['resume_ratio']:.2f}"
        f"  ({s['resumed']:.2f} s / {s['ours']:.2f} s)",
        f"  adopt an installed machine / whole install:     {r['adopt_ratio']:.3f}"
        f"  ({s['adopt'] * 1000:.0f} ms / {s['ours']:.2f} s)",
    ])  # fmt: skip


def main() -> int:
    result = measure(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
    print(format_result(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
