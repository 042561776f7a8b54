"""Private RAM folders for plaintext keys are removed on every exit path; a SIGKILLed owner's folder
is removed by the next run."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from fleet_sdk.fs import private as privatedir

HOLDER = """
import sys, time
from fleet_sdk.fs.private import private_dir
with private_dir(sys.argv[1]) as d:
    (d / "key").write_text("AGE-SECRET-KEY-1PLAINTEXT")
    print(d, flush=True)
    time.sleep(60)
"""


def _default_sigint() -> None:
    # a job started in the background of a non-interactive shell inherits SIGINT ignored, and a
    # process that ignores SIGINT rightly survives it: the owner starts as a terminal's would
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def hold(purpose: str) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, purpose], stdout=subprocess.PIPE, text=True, preexec_fn=_default_sigint
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


@pytest.fixture
def purpose() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_the_folder_is_private_in_ram_and_removed_after_return_and_exception(purpose: str) -> None:
    with privatedir.private_dir(purpose) as d:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        assert d.parent == privatedir.base() and d.name.startswith(f"fleet-{purpose}-{os.getpid()}-")
        if Path("/dev/shm").is_dir():
            assert str(d).startswith(str(Path("/dev/shm").resolve()))
    assert not d.exists()
    with pytest.raises(RuntimeError), privatedir.private_dir(purpose) as d:
        raise RuntimeError("boom")
    assert not d.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_terminated_owner_removes_its_folder(purpose: str, sig: signal.Signals) -> None:
    proc, d = hold(purpose)
    assert (d / "key").is_file()
    proc.send_signal(sig)
    proc.wait(timeout=20)
    assert not d.exists()


def test_a_killed_owners_folder_is_removed_by_the_next_run_and_a_live_ones_is_kept(purpose: str) -> None:
    proc, d = hold(purpose)
    other, kept = hold(purpose)
    try:
        proc.kill()  # SIGKILL: nothing of the owner runs
        proc.wait(timeout=20)
        assert (d / "key").is_file()  # the fault bites: the plaintext is left behind
        assert privatedir.remove_stale(purpose) == [d]
        assert not d.exists() and (kept / "key").is_file()  # the live owner's folder stays
        with privatedir.private_dir(purpose):
            pass
        assert (kept / "key").is_file()
    finally:
        other.terminate()
        other.wait(timeout=20)
    assert not kept.exists()
