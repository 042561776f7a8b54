"""Files written so that a crash never leaves a partial one: temp file beside the target, fsync, rename.

Secret material goes to 0600 files; directories this module creates are 0700. An OSError while
writing a file's data (a full disk fails the write, the flush or the close, and says nowhere where)
carries the file's name.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


def ensure_dir(path: Path, mode: int = 0o700) -> None:
    """Create `path` and missing parents with `mode`; existing directories keep theirs."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent writer made it first
            d.mkdir(mode=mode)


@contextlib.contextmanager
def _named(path: str | Path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise


def write_atomic(path: Path, data: bytes, mode: int = 0o600, dir_mode: int = 0o700) -> None:
    """Replace `path` with `data` in one rename; readers see the old or the new file, never a mix.
    Missing parent directories are created with `dir_mode`."""
    ensure_dir(path.parent, dir_mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with _named(path), os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)  # make the rename itself durable


def write_atomic_many(files: Sequence[tuple[Path, bytes, int]], dir_mode: int = 0o700) -> None:
    """write_atomic for many (path, data, mode) at once: every file is complete on disk (one
    sync for all) before any is renamed into place; one more sync makes the renames durable."""
    if not files:
        return
    temps: list[tuple[str, Path]] = []
    renamed = 0
    try:
        for path, data, mode in files:
            ensure_dir(path.parent, dir_mode)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            os.fchmod(fd, mode)
            with _named(path), os.fdopen(fd, "wb") as f:
                f.write(data)
        folders = list(dict.fromkeys(path.parent for path, _, _ in files))
        sync_filesystem(folders)
        for tmp, path in temps:
            os.replace(tmp, path)
            renamed += 1
        sync_filesystem(folders)
    finally:
        for tmp, _ in temps[renamed:]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def write_if_changed(path: Path, data: bytes, mode: int = 0o600, dir_mode: int = 0o700) -> bool:
    """Write only when the content differs (keeps mtimes and git status quiet). True if written."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, data, mode, dir_mode)
    return True


def write_new(path: Path, data: bytes, mode: int = 0o600, dir_mode: int = 0o700) -> None:
    """Create `path` inside a folder nobody else sees yet (a staging folder that is renamed into
    place as a whole): no temp file or rename needed. Call `sync_filesystem` on the folder before
    it is swapped in, so its data is on disk first."""
    ensure_dir(path.parent, dir_mode)
    create(path, data, mode)


def create(path: str | Path, data: bytes, mode: int = 0o600) -> None:
    """write_new in a folder known to exist."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with _named(path), os.fdopen(fd, "wb") as f:
        f.write(data)


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def sync_filesystem(folders: Sequence[Path]) -> None:
    """Make durable everything written to the filesystem holding `folders` with one syncfs, instead
    of one fsync per file and folder; without syncfs, fsync every file in `folders`, the folders
    and their parents (where they were renamed)."""
    fd = os.open(folders[0], os.O_RDONLY)
    try:
        if getattr(_libc, "syncfs", None) is not None and _libc.syncfs(fd) == 0:
            return
    finally:
        os.close(fd)
    for folder in folders:
        for file in folder.rglob("*"):
            if file.is_file() and not file.is_symlink():
                with open(file, "rb+") as f:
                    os.fsync(f.fileno())
    for folder in dict.fromkeys([*folders, *(f.parent for f in folders)]):
        fsync_dir(folder)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
