"""Private folders for plaintext keys (an ssh deploy key for one call, say): in RAM when /dev/shm is
writable, so the plaintext never reaches a disk; 0700; removed on every exit path a process has.

Return, exception, Ctrl-C, SIGTERM and SIGHUP all run the removal (the two signals are turned into
SystemExit while the folder exists). SIGKILL runs nothing, so each folder's name carries its owner's
pid, and the next run removes the folders of owners that are gone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@functools.cache
def base() -> Path:
    """The shared-memory folder when it is writable, else the temp folder (both resolved: either
    may be a link). Looked up once: a vars run makes a folder per generator."""
    shm = Path("/dev/shm")  # noqa: S108 (mkdtemp makes a private 0700 folder in it)
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm.resolve()
    return Path(tempfile.gettempdir()).resolve()


def new(purpose: str) -> Path:
    """A new 0700 folder `fleet-<purpose>-<pid>-<random>` in `base()`; the caller removes it (or,
    after a SIGKILL, the next `remove_stale(purpose)` does)."""
    return Path(tempfile.mkdtemp(prefix=f"fleet-{purpose}-{os.getpid()}-", dir=base()))


@contextlib.contextmanager
def private_dir(purpose: str) -> Iterator[Path]:
    """`new(purpose)`, removed when the block ends however it ends; stale ones of dead processes
    are removed first."""
    remove_stale(purpose)
    path = new(purpose)
    try:
        with _signals_exit():
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale(purpose: str) -> list[Path]:
    """Remove the folders of `purpose` whose owning process no longer runs; returns them."""
    pattern = re.compile(rf"^fleet-{re.escape(purpose)}-(\d+)-")
    removed = []
    for folder in {base(), Path(tempfile.gettempdir()).resolve()}:
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                m = pattern.match(entry.name)
                if not m or _alive(int(m.group(1))):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:  # another run removed it first
                    continue
                if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():  # only our own folders
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@contextlib.contextmanager
def _signals_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP raise SystemExit in the main thread meanwhile, so `finally` blocks run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, leave) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
