"""A target's OpenSSH server: its config, the keys, a free port, and the shell test for a live
listener."""

from __future__ import annotations

import secrets
import socket
import subprocess
from pathlib import Path

SSHD = "/usr/sbin/sshd"

SSHD_CONFIG = """\
ListenAddress {address}
Port {port}
HostKey /etc/ssh/ssh_host_ed25519_key
# NixOS's default place for keys, so a non-root login user gets its own file
AuthorizedKeysFile /etc/ssh/authorized_keys.d/%u
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile /run/sshd.pid
# without the post-quantum default each connection costs about 0.1 s more CPU: tests make hundreds
KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org
Subsystem sftp /usr/lib/openssh/sftp-server
"""

# Shell: true when the sshd listener of /run/sshd.pid runs (sets $pid); a zombie counts as gone.
LISTENER_ALIVE = (
    'pid=$(cat /run/sshd.pid 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null '
    '&& case $(cut -d" " -f3 /proc/$pid/stat) in Z|X) false;; esac'
)


FIRST_PORT = 10000  # the lowest port a target listens on, when below the ephemeral range


LOOPBACK = "127.0.0.1"  # a target's default address; any other of 127.0.0.0/8 works as well


def free_port(address: str = LOOPBACK) -> int:
    """A port free on `address` now, below the kernel's ephemeral range when there is room: an ssh
    client's connection, which takes its own end from that range, then never holds a target's port
    while the target reboots (its sshd binds the same port again)."""
    low = _ephemeral_low()
    for _ in range(50 if low > FIRST_PORT else 0):
        if (port := _bound(address, FIRST_PORT + secrets.randbelow(low - FIRST_PORT))) is not None:
            return port
    port = _bound(address, 0)
    assert port is not None
    return port


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bound(address: str, port: int) -> int | None:
    with socket.socket() as s:
        try:
            s.bind((address, port))
        except OSError:
            return None
        bound: int = s.getsockname()[1]
        return bound


def keygen(path: Path) -> Path:
    """A new ed25519 key pair at `path` and `path`.pub, without passphrase or comment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return path


def connects(port: int, address: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False
