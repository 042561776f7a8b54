"""SHA-512 crypt through the system's libcrypt (libxcrypt, what NixOS verifies passwords with),
called in-process; None when the library is not there (callers then use `openssl passwd -6`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import secrets
import string
import threading

_SALT_CHARS = string.ascii_letters + string.digits + "./"
_lock = threading.Lock()  # crypt() returns a static buffer


def _load() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("crypt")
    try:
        lib = ctypes.CDLL(name or "libcrypt.so.1")
    except OSError:
        return None
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib


_lib = _load()


def sha512_crypt(password: bytes, salt: str | None = None) -> bytes | None:
    if _lib is None:
        return None
    salt = salt or "".join(secrets.choice(_SALT_CHARS) for _ in range(16))
    with _lock:
        result = _lib.crypt(password, f"$6${salt}".encode())
    if not result or not result.startswith(b"$6$"):
        return None  # a libcrypt without SHA-512 support
    return bytes(result)
