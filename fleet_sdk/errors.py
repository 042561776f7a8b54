"""The exception tree. Every message names what it is about and says what to do.

FleetError
 ├── SpecError          a fleet declaration that cannot work (names machine / field)
 ├── ConfigError        stack configuration (Pulumi.<stack>.yaml, -c overrides)
 ├── StackError         a stack program that cannot be loaded
 └── sops.SopsError     sops documents and the sops/ key tree (names the file)

`file_error_message` turns the OSError or UnicodeDecodeError of a file that cannot be read or written
into the same kind of one-line message, for the CLI.
"""

from __future__ import annotations

import errno
import os
from pathlib import PurePath
from types import TracebackType


class FleetError(Exception):
    """Root of every error fleet_sdk raises on purpose; the CLI prints these without a traceback."""


class SpecError(FleetError):
    """A fleet declaration that is refused before anything is created.

    Holds one or more problems, each already naming the machine or instance and the field.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ConfigError(FleetError):
    """Stack configuration that is missing or malformed."""


class StackError(FleetError):
    """A stack program under stacks/ that is missing or does not build a Fleet."""


_REASONS = {
    errno.EISDIR: "is a folder where a file should be",
    errno.ENOTDIR: "a file stands where a folder should be on this path",
    errno.ELOOP: "is a symbolic link loop",
    errno.EACCES: "permission denied (check owner and mode)",
    errno.EPERM: "operation not permitted (check owner, mode, and `lsattr` for the immutable flag)",
    errno.ENOENT: "does not exist",
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "is on a read-only file system",
}


def file_error_message(exc: BaseException) -> str | None:
    """`<file>: <what is wrong>; …` for an OSError that names a file, or a UnicodeDecodeError raised
    while reading one; None for anything else, which is a bug and should show its traceback."""
    if isinstance(exc, OSError) and exc.filename is not None:
        where = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {os.fsdecode(exc.filename2)}"
        reason = _REASONS.get(exc.errno or 0) or exc.strerror or type(exc).__name__
        return f"{where}: {reason}; repair it (or restore it from git) and run the command again"
    if isinstance(exc, UnicodeDecodeError):
        path = _file_being_read(exc.__traceback__)
        if path is None:
            return None
        byte = exc.object[exc.start] if exc.start < len(exc.object) else 0
        return (
            f"{path}: not UTF-8 text (byte 0x{byte:02x} at offset {exc.start}); "
            "repair it (or restore it from git) and run the command again"
        )
    return None


def _file_being_read(tb: TracebackType | None) -> str | None:
    """The file whose bytes failed to decode: pathlib's `read_text` receiver, else the `path` variable
    of the innermost fleet_sdk frame that has one (readers name the file they read `path`), if that
    file indeed is not UTF-8; None when no file can be blamed (then it is a bug)."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        receiver = frame.f_locals.get("self")
        if frame.f_code.co_name == "read_text" and isinstance(receiver, PurePath):
            return str(receiver)
        path = frame.f_locals.get("path")
        if str(frame.f_globals.get("__name__", "")).startswith("fleet_sdk") and isinstance(path, PurePath | str):
            return str(path) if _not_utf8(str(path)) else None
    return None


def _not_utf8(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.read().decode()
    except UnicodeDecodeError:
        return True
    except OSError:
        return False
    return False
