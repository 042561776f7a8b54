"""Deploy targets: `[user@]host[:port]`, as clan's `deploy.targetHost` writes them
(`root@cinnabar.zt`, `crs58@stibnite.zt`, `root@[fd00::1]:2222`).

A target reaches ssh's argv and the commands the graph builds, so it is parsed once, strictly:
a POSIX user name, a DNS name or an IP address (IPv6 in brackets when a port follows), a port
1-65535. Anything else — spaces, quotes, shell metacharacters, a leading '-' ssh would read as an
option — is refused before anything runs.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from typing_extensions import override

# POSIX portable user names (useradd's default rule), without a leading '-'.
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
FORM = "[user@]host[:port], e.g. root@cinnabar.zt or crs58@203.0.113.7:2222"


@dataclass(frozen=True)
class TargetHost:
    user: str
    host: str  # a DNS name or an IP address (IPv6 without brackets)
    port: int | None = None

    @classmethod
    def parse(cls, text: str, default_user: str = "root") -> TargetHost:
        """The target, or ValueError saying what is wrong with it."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"{text!r} is empty; use {FORM}")
        user, at, rest = text.rpartition("@")
        if at and not user:
            raise ValueError(f"{text!r} has an empty user before '@'; use {FORM}")
        if at and not _USER.match(user):
            raise ValueError(f"{text!r}: user {user!r} is not a user name (letters, digits, '_', '.', '-')")
        host, port = _split_port(text, rest)
        return cls(user or default_user, host, port)

    @override
    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and self.port else self.host
        return f"{self.user}@{host}" + (f":{self.port}" if self.port else "")


def _split_port(text: str, rest: str) -> tuple[str, int | None]:
    port_text = None
    if rest.startswith("["):
        inner, close, tail = rest[1:].partition("]")
        if not close or (tail and not tail.startswith(":")):
            raise ValueError(f"{text!r}: a bracketed address is written [addr] or [addr]:port")
        host, port_text = inner, (tail[1:] if tail else None)
        if not _is_ip(host, 6):
            raise ValueError(f"{text!r}: {host!r} in brackets is not an IPv6 address")
    elif rest.count(":") > 1:  # a bare IPv6 address, no port
        host = rest
        if not _is_ip(host, 6):
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address; write [addr]:port to give a port")
    else:
        host, colon, port_text = rest.partition(":")
        port_text = port_text if colon else None
        if not host:
            raise ValueError(f"{text!r} has no host; use {FORM}")
        if not (_is_ip(host, 4) or _is_dns_name(host)):
            raise ValueError(f"{text!r}: {host!r} is not a host name or IP address")
    return host, _port(text, port_text)


def _port(text: str, port_text: str | None) -> int | None:
    if port_text is None:
        return None
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port {port_text!r} is not a number from 1 to 65535")
    return int(port_text)


def _is_ip(host: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(host).version == version
    except ValueError:
        return False


def _is_dns_name(host: str) -> bool:
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_LABEL.match(label) for label in labels) and not host.startswith("-")


def problem(text: str) -> str | None:
    """Why `text` is no target, or None."""
    try:
        TargetHost.parse(text)
    except ValueError as e:
        return str(e)
    return None
