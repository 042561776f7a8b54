"""A generator's timeout kills everything its script started, sandboxed or not: the script's
background children included (they could hold plaintexts and our pipes). Likewise what a script
leaves running when it exits, and every command in flight on Ctrl-C (`runner.kill_running`)."""

from __future__ import annotations

import secrets
import subprocess
import threading
import time

import pytest

from fleet_sdk.errors import CommandError, GeneratorError
from fleet_sdk.spec import Generator, GeneratorFile
from fleet_sdk.tools import runner
from fleet_sdk.vars.execute import run_generator
from fleet_sdk.vars.store import GeneratorId

from .fault_tools import running, wait_for
from .tools import require

pytestmark = pytest.mark.integration


def marker() -> str:
    """A sleep duration no other process uses: its argv finds the process in /proc."""
    return f"{1000 + secrets.randbelow(1000)}.{secrets.randbelow(10**9):09d}"


class Watch:
    """Polls /proc from a thread for processes whose argv holds the marker: whether one appeared."""

    def __init__(self, mark: str) -> None:
        self.mark = mark.encode()
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.seen.update(running(self.mark))
            time.sleep(0.02)

    def stop(self) -> set[int]:
        self._stop.set()
        self._thread.join()
        return self.seen


def gone(mark: str) -> None:
    """No process with the marker is left (SIGKILL is delivered at once; reaping takes a moment)."""
    wait_for(lambda: not running(mark.encode()), timeout=3, what=f"processes with {mark} to end")


def hang(mark: str) -> Generator:
    return Generator(name="hang", files=(GeneratorFile(name="x", secret=False),), script=f"sleep {mark} & sleep 600")


@pytest.mark.parametrize("sandbox", [True, False], ids=["bwrap", "no-sandbox"])
def test_a_timed_out_generator_leaves_no_process_behind(sandbox: bool) -> None:
    if sandbox:
        require(("bwrap", "bubblewrap"))
    mark = marker()
    watch = Watch(mark)
    started = time.monotonic()
    with pytest.raises(GeneratorError, match=r"generator hang \(machine m\): its script timed out; nothing of it"):
        run_generator(GeneratorId("hang", "m"), hang(mark), {}, {}, sandbox=sandbox, timeout=1.5)
    assert time.monotonic() - started < 10  # no wait for the child: our pipes were not held
    assert watch.stop()  # the background child had started
    gone(mark)


def test_killing_only_the_leader_leaves_the_background_child_running() -> None:
    """Negative control: what a plain timeout (subprocess.run's) does to the same script."""
    mark = marker()
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(["bash", "-c", f"sleep {mark} & sleep 600"], timeout=1.5, capture_output=True, check=False)
    survivors = running(mark.encode())
    try:
        assert survivors, "the child should have outlived its killed leader"
    finally:
        for pid in survivors:
            subprocess.run(["kill", "-9", str(pid)], check=False)
    gone(mark)


@pytest.mark.parametrize("sandbox", [True, False], ids=["bwrap", "no-sandbox"])
def test_what_a_finished_script_leaves_running_is_killed(sandbox: bool) -> None:
    if sandbox:
        require(("bwrap", "bubblewrap"))
    mark = marker()
    leaves = Generator(
        name="leaves",
        files=(GeneratorFile(name="x", secret=False),),
        script=f"sleep {mark} >/dev/null 2>&1 & sleep 0.3; echo done > $out/x",
    )
    watch = Watch(mark)
    assert run_generator(GeneratorId("leaves", "m"), leaves, {}, {}, sandbox=sandbox) == {"x": b"done\n"}
    assert watch.stop()  # it had started
    gone(mark)
    # negative control: a plain run leaves it running
    subprocess.run(["bash", "-c", f"sleep {mark} >/dev/null 2>&1 &"], check=True)
    # the background child may not have exec'd sleep yet when bash returns: poll, then clean up
    try:
        wait_for(lambda: running(mark.encode()), timeout=3, what=f"the plain run's {mark} to show")
    finally:
        for pid in running(mark.encode()):
            subprocess.run(["kill", "-9", str(pid)], check=False)


def test_kill_running_ends_commands_other_threads_wait_for() -> None:
    """What generate does on Ctrl-C, which reaches only its own process group."""
    mark = marker()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            runner.LOCAL.run(["bash", "-c", f"sleep {mark} & sleep 600"], timeout=600)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=call)
    thread.start()
    wait_for(lambda: running(mark.encode()), what="the command to start")
    runner.kill_running()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], CommandError) and errors[0].returncode == -9
    gone(mark)
