"""Helpers for the lock, recovery, fault and leak tests: a fleet of cheap Python generators, the real
CLI in the background (in a session of its own, so its whole process group can be killed), the
repository lock's holder, processes by their command line, and what the store really holds."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fleet_sdk import sops
from fleet_sdk.spec import Fleet
from fleet_sdk.stack.settings import load_stack
from fleet_sdk.vars.lock import lock_path
from fleet_sdk.vars.selection import fleet_graph
from fleet_sdk.vars.store import GeneratorId, VarsStore

from .vars_project import make_project

# Per machine: three key pairs, a certificate from the shared CA and pair `a`; on m0 a `slow` one
# (FLEET_TEST_SLOW seconds). FLEET_TEST_DELAY slows every generator, to widen a run for kill tests.
CHEAP_STACK = """
import os, secrets, time
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine


def _pause():
    time.sleep(float(os.environ.get("FLEET_TEST_DELAY", "0")))


def _pair(inputs, prompts, out):
    _pause()
    (out / "s").write_text("secret-" + secrets.token_hex(16))
    (out / "p").write_text("pub-" + secrets.token_hex(8))


def _ca(inputs, prompts, out):
    _pause()
    (out / "ca").write_text("ca-secret-" + secrets.token_hex(16))
    (out / "ca.pub").write_text("ca-" + secrets.token_hex(8))


def _cert(inputs, prompts, out):
    _pause()
    (out / "c").write_text(inputs["ca"]["ca.pub"].decode() + "/" + inputs["a"]["p"].decode())


def _slow(inputs, prompts, out):
    time.sleep(float(os.environ.get("FLEET_TEST_SLOW", "0")))
    (out / "v").write_text("generated-" + secrets.token_hex(8))


ca = Generator(name="ca", share=True, python=_ca,
               files=(GeneratorFile(name="ca", deploy=False), GeneratorFile(name="ca.pub", secret=False)))
pairs = tuple(Generator(name=n, python=_pair, files=(GeneratorFile(name="s"), GeneratorFile(name="p", secret=False)))
              for n in ("a", "b", "c"))
cert = Generator(name="cert", dependencies=("ca", "a"), python=_cert, files=(GeneratorFile(name="c", secret=False),))
slow = Generator(name="slow", python=_slow, files=(GeneratorFile(name="v", secret=False),))
EXTRA = ()
@EXTRA@


def build(settings):
    return Fleet(name="demo", machines=tuple(
        Machine(name=f"m{i}", generators=(ca, *pairs, cert, *EXTRA) + ((slow,) if i == 0 else ()))
        for i in range(@MACHINES@)))
"""


def cheap_project(root: Path, machines: int = 3, extra: str = "") -> tuple[Path, dict[str, str]]:
    """A project whose fleet is CHEAP_STACK; env has the admin's SOPS_AGE_KEY."""
    body = CHEAP_STACK.replace("@MACHINES@", str(machines)).replace("@EXTRA@", extra)
    project, env = make_project(root, body)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing but the CLI writes into the project
    return project, env


def cli_argv(project: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "fleet_sdk", *args, "--project", str(project), "--stack", "dev"]


def spawn(project: Path, env: dict[str, str], *args: str, stdin: bytes | None = None) -> subprocess.Popen[bytes]:
    """The CLI in the background, leading a process group of its own (for os.killpg)."""
    proc = subprocess.Popen(
        cli_argv(project, *args),
        env=env,
        cwd=project,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
        proc.stdin = None  # communicate() must not flush it again
    return proc


def wait_for(condition: Callable[[], object], timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def lock_holder(repo: Path) -> int | None:
    """The pid the repository lock file names (its holder writes it once it holds the lock)."""
    try:
        first = lock_path(repo).read_text().split(" ", 1)[0]
    except FileNotFoundError:
        return None
    return int(first) if first.isdigit() else None


def cmdlines() -> dict[int, bytes]:
    """Every process's argv (NUL-separated) from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return out


def running(marker: bytes) -> list[int]:
    """Processes (zombies aside: their cmdline is empty) whose argv holds `marker`."""
    return [pid for pid, argv in cmdlines().items() if marker in argv]


def untracked_files(repo: Path) -> set[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--others", "--", "vars", "sops"],
        capture_output=True,
        check=True,
    ).stdout
    return {p.decode() for p in out.split(b"\0") if p}


def load_fleet(project: Path) -> Fleet:
    return load_stack(project, "dev", [], project)[2]


def generator_states(repo: Path, fleet: Fleet, identity: str) -> dict[GeneratorId, str]:
    """What the store holds per generator, judged from the files themselves: "complete" (every file
    there, every secret decrypts with the admin key to a non-empty value, git tracks it all),
    "untracked" (complete, but some file is not tracked) or "missing" (some file is not there)."""
    store = VarsStore(repo)
    untracked = untracked_files(repo)
    states = {}
    for gid, node in fleet_graph(fleet).items():
        if not store.complete(gid, node.generator):
            states[gid] = "missing"
            continue
        for f in node.generator.all_files:
            value = store.read(gid, f, [identity])
            assert value, f"{gid} {f.name} is empty"
        folder = f"vars/{gid.rel_dir}/"
        states[gid] = "untracked" if any(p.startswith(folder) for p in untracked) else "complete"
    return states


def secret_values(repo: Path, fleet: Fleet, identity: str) -> dict[str, bytes]:
    """Every secret the store holds, decrypted with the admin key (machine age keys included)."""
    store = VarsStore(repo)
    out = {}
    for gid, node in fleet_graph(fleet).items():
        for f in node.generator.all_files:
            if f.secret and store.exists(gid, f):
                out[f"{gid.rel_dir}/{f.name}"] = store.secret(gid, f.name, [identity])
    for secret in sorted((repo / "sops" / "secrets").glob("*/secret")):
        out[str(secret.parent.relative_to(repo))] = sops.decrypt(secret.read_bytes(), [identity])
    return out


def kill_group(proc: subprocess.Popen[bytes], reap: bool = True) -> None:
    """SIGKILL the process group `spawn` made, and reap its leader. Unreaped (`reap=False`), the
    leader stays a zombie whose pid still counts as alive: no other run — a test alongside, in
    another worker — removes its private folders as stale before this test has looked at them."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if reap:
        proc.communicate()


class ArgvRecorder:
    """Every command line seen in /proc while it runs (polled from a thread, every few ms), plus those
    the wrappers `wrap_tools` logged: together, the argv of every process a command starts."""

    def __init__(self, wrapper_log: Path | None = None) -> None:
        self.seen: set[bytes] = set()
        self.wrapper_log = wrapper_log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.seen.update(cmdlines().values())
            time.sleep(0.003)

    def stop(self) -> set[bytes]:
        self._stop.set()
        self._thread.join()
        if self.wrapper_log is not None and self.wrapper_log.exists():
            self.seen.update(self.wrapper_log.read_bytes().split(b"\n"))
        return self.seen


def wrap_tools(folder: Path, tools: list[str]) -> Path:
    """Wrappers in `folder` (put it first on PATH) that log their argv to `folder/argv.log`, then
    run the real tool. Returns the log."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "argv.log"
    for tool in tools:
        real = shutil.which(tool)
        if real is None:
            continue
        wrapper = folder / tool
        wrapper.write_text(f'#!/bin/sh\nprintf \'%s\\0\' "$0" "$@" >> {log}\necho >> {log}\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
    return log
