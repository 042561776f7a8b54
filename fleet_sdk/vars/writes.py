"""Failures to write the store (a full disk, a read-only or unwritable folder), said plainly: the
reason a VarsWriteError gives."""

from __future__ import annotations

import errno

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
}


def reason(e: OSError) -> str:
    """`<file>: <why>` of an OSError (fsutil names the file even when the OS does not)."""
    why = _REASONS.get(e.errno or 0, e.strerror or type(e).__name__)
    return f"{e.filename}: {why}" if e.filename else why
