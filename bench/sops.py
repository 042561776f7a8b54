"""Encrypting and decrypting N small secrets: fleet_sdk.sops in-process against one process per file.

Ours: for each secret, `fleet_sdk.sops.encrypt` to one age recipient and `fleet_sdk.sops.decrypt` the
document (MAC verified), all in this Python process. Also reported, not asserted: the same with the
document written to a file and read back ("document in a file"), which a real `fleet vars` run also pays.
Per-file processes: what clan does by running sops once per file, measured with Debian's `age` CLI (the
Go age that sops links): for each secret, write the plaintext to a file, run `age --encrypt --armor` on it
(one process), then `age --decrypt` on the result (a second process) and read the output. That is the
age part of a sops run only (no AES-GCM value, no MAC, no JSON, a smaller binary than sops), so it is a
lower bound of the per-file-process cost.

The per-file way and "document in a file" use real files in a temporary directory; all ways use the same
recipient and run in the same process and run, interleaved, so machine noise hits each of them. Only the
ratios are meaningful, never a bare time on its own.

    python bench/sops.py [N]
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleet_sdk.sops import decrypt, encrypt, generate

N = 1000
# Best-of-N rounds, interleaved; the minimum is the least noisy estimate on a shared machine.
ROUNDS = 3


def age_cli() -> str:
    path = shutil.which("age")
    if path is None:
        raise RuntimeError("the age CLI is missing (Debian package age; see scripts/system-deps)")
    return path


def secrets(n: int) -> list[bytes]:
    """Small secrets of the size clan's generators produce (passwords, tokens), some with a newline."""
    return [os.urandom(12).hex().encode() + (b"\n" if i % 2 else b"") for i in range(n)]


def ours(plaintexts: list[bytes], recipient: str, identity: str) -> None:
    for plaintext in plaintexts:
        if decrypt(encrypt(plaintext, [recipient]), [identity]) != plaintext:
            raise AssertionError("decrypted content differs")


def ours_with_files(workdir: Path, plaintexts: list[bytes], recipient: str, identity: str) -> None:
    for i, plaintext in enumerate(plaintexts):
        path = workdir / f"{i:05d}.secret"
        path.write_text(encrypt(plaintext, [recipient]))
        if decrypt(path.read_text(), [identity]) != plaintext:
            raise AssertionError(f"{path}: decrypted content differs")


def per_file_processes(workdir: Path, plaintexts: list[bytes], recipient: str, key_file: Path, age: str) -> None:
    for i, plaintext in enumerate(plaintexts):
        source = workdir / f"{i:05d}.txt"
        sealed = workdir / f"{i:05d}.age"
        opened = workdir / f"{i:05d}.out"
        source.write_bytes(plaintext)
        subprocess.run([age, "--encrypt", "--armor", "-r", recipient, "-o", str(sealed), str(source)], check=True)
        subprocess.run([age, "--decrypt", "-i", str(key_file), "-o", str(opened), str(sealed)], check=True)
        if opened.read_bytes() != plaintext:
            raise AssertionError(f"{opened}: decrypted content differs")


def _timed(run: Callable[[], None]) -> float:
    gc.collect()  # garbage of the previous run is not charged to this one
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(n: int = N, rounds: int = ROUNDS) -> dict[str, Any]:
    """Seconds for n secrets each way (best of `rounds`) and the ratios per-file / ours."""
    age = age_cli()
    identity, recipient = generate()
    plaintexts = secrets(n)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key_file = root / "keys.txt"
        key_file.write_text(identity + "\n")

        def fresh(name: str) -> Path:
            # a new directory per run, so no run overwrites files of an earlier one
            return Path(tempfile.mkdtemp(prefix=name, dir=root))

        # Warm-up: imports, the age binary in the page cache, pyrage's first call.
        ours(plaintexts[:5], recipient, identity)
        ours_with_files(fresh("warm-ours"), plaintexts[:5], recipient, identity)
        per_file_processes(fresh("warm-cli"), plaintexts[:5], recipient, key_file, age)
        best = {"ours": float("inf"), "ours_files": float("inf"), "per_file": float("inf")}
        for _ in range(rounds):
            # Interleaved, so a slow spell of the machine hits every side.
            runs: dict[str, Callable[[], None]] = {
                "ours": lambda: ours(plaintexts, recipient, identity),
                "ours_files": lambda: ours_with_files(fresh("ours"), plaintexts, recipient, identity),
                "per_file": lambda: per_file_processes(fresh("cli"), plaintexts, recipient, key_file, age),
            }
            for name, run in runs.items():
                best[name] = min(best[name], _timed(run))
    version = subprocess.run([age, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return {
        "secrets": n,
        "rounds": rounds,
        "ours_s": best["ours"],
        "ours_files_s": best["ours_files"],
        "per_file_s": best["per_file"],
        "processes": 2 * n,
        "age_version": version,
        "ratio": best["per_file"] / best["ours"],
        "ratio_files": best["per_file"] / best["ours_files"],
    }


def format_result(r: dict[str, Any]) -> str:
    n = r["secrets"]
    cli = f"age CLI, one process per file ({r['processes']} runs of age {r['age_version']})"
    rows = [
        ("fleet_sdk.sops in-process", r["ours_s"], f"{r['ratio']:.1f}x"),
        ("fleet_sdk.sops in-process, document in a file", r["ours_files_s"], f"{r['ratio_files']:.1f}x"),
        (cli, r["per_file_s"], "1.0x"),
    ]
    lines = [
        f"encrypt+decrypt of {n} small secrets (best of {r['rounds']}, same run, interleaved)",
        f"  {'way':<62} {'total s':>8} {'ms/secret':>10} {'speed-up':>9}",
    ]
    lines += [f"  {way:<62} {s:>8.3f} {s * 1000 / n:>10.3f} {x:>9}" for way, s, x in rows]
    lines.append(
        f"  ratio per-file / in-process: {r['ratio']:.1f}x "
        f"(with the document written and read back: {r['ratio_files']:.1f}x)"
    )
    return "\n".join(lines)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else N
    print(format_result(measure(n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
