"""The repository lock: every command that writes vars/ or sops/ (generate, set, fix, keygen, and
the machine keys they create) holds it, so no writer swaps a generator folder over another's value.

A second writer waits for the first, saying once on stderr which process it waits for; after
FLEET_VARS_LOCK_TIMEOUT seconds (default 3600; 0 = do not wait) it gives up with an error naming
that process. Readers (check, list, get, plan) take no lock: every write is atomic per file or
per generator folder, so they see the old or the new state.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fleet_sdk.errors import LockError

TIMEOUT_ENV = "FLEET_VARS_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 3600.0
_POLL = 0.05


def lock_path(repo: Path) -> Path:
    """In .git when there is one (never tracked, gone with the clone), else in the temp folder."""
    git_dir = repo / ".git"
    if git_dir.is_dir():
        return git_dir / "fleet-vars.lock"
    digest = hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"fleet-vars-{digest}.lock"


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise LockError(f"{TIMEOUT_ENV}={raw!r}: give a number of seconds") from None
    return max(0.0, value)


@contextlib.contextmanager
def repository_lock(repo: Path, command: str = "fleet vars") -> Iterator[None]:
    """Hold the repository's exclusive lock for the block; `command` names this writer to others."""
    path = lock_path(repo)
    try:
        handle = open(path, "a+b")  # noqa: SIM115 (closed below, after the lock is released)
    except OSError as e:
        reason = "the repository is read-only" if e.errno == errno.EROFS else e.strerror
        raise LockError(
            f"{repo}: cannot create the vars lock {path} ({reason}); `{command}` writes the repository, "
            "so run it where the repository is writable"
        ) from None
    with handle:
        _acquire(handle.fileno(), path, repo, command)
        try:
            with contextlib.suppress(OSError):  # only for others' messages; a full disk must not stop us
                os.ftruncate(handle.fileno(), 0)
                os.pwrite(handle.fileno(), f"{os.getpid()} {command}\n".encode(), 0)
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _acquire(fd: int, path: Path, repo: Path, command: str) -> None:
    if _try(fd):
        return
    holder = _holder(path)
    timeout = _timeout()
    if timeout > 0:
        print(f"waiting for {holder} to finish writing the vars of {repo} …", file=sys.stderr, flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(_POLL)
        if _try(fd):
            return
    raise LockError(
        f"{repo}: {_holder(path)} has been writing its vars for longer than {timeout:g} s (lock {path}); "
        f"wait for it to finish or stop it, then run `{command}` again (set {TIMEOUT_ENV} to wait longer)"
    )


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> str:
    """`process <pid> (<command>)` from the lock file, as far as the holder wrote it."""
    try:
        pid, _, command = path.read_text().strip().partition(" ")
    except (OSError, UnicodeDecodeError):
        pid, command = "", ""
    if not pid.isdigit():
        return "another fleet command"
    return f"process {pid} (`{command}`)" if command else f"process {pid}"
