"""SHA-512 crypt through the system's libcrypt (libxcrypt, what NixOS verifies passwords with),
called in-process; None when the library is not there (callers then use `openssl passwd -6`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import secrets
import string

_SALT_CHARS = string.ascii_letters + string.digits + "./"
# crypt_r's struct crypt_data is about 33 KiB in libxcrypt (131 KiB in old glibc); a fresh zeroed
# buffer per call makes calls independent, so hashes run in parallel (ctypes releases the GIL)
_DATA_SIZE = 1 << 18


def _load() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("crypt")
    try:
        lib = ctypes.CDLL(name or "libcrypt.so.1")
    except OSError:
        return None
    lib.crypt_r.restype = ctypes.c_char_p
    lib.crypt_r.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    return lib


_lib = _load()


def sha512_crypt(password: bytes, salt: str | None = None) -> bytes | None:
    if _lib is None:
        return None
    salt = salt or "".join(secrets.choice(_SALT_CHARS) for _ in range(16))
    data = ctypes.create_string_buffer(_DATA_SIZE)
    result = _lib.crypt_r(password, f"$6${salt}".encode(), data)
    if not result or not result.startswith(b"$6$"):
        return None  # a libcrypt without SHA-512 support
    return bytes(result)
