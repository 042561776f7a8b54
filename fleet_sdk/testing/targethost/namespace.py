"""The mount and PID namespace a target boots in: its folder on this machine, the boot script
and PID 1, the `unshare` that starts a boot, and the processes a boot leaves behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from fleet_sdk.testing.targethost.installer import OS_RELEASE, OsKind
from fleet_sdk.testing.targethost.records import CALLS_LOG
from fleet_sdk.testing.targethost.shims import NOPASSWD_GROUP, SHIMS, SUDO_HELPER, TARGET_PATH
from fleet_sdk.testing.targethost.sshd import SSHD, keygen

TARGET_NIX_CONF = """\
experimental-features = nix-command flakes
sandbox = false
build-users-group =
substituters =
"""

# PID 1: reaps orphans (a killed listener, `setsid -f` watchdogs), so `kill -0` never finds a zombie;
# SIGTERM (the reboot shim) ends it, and with it every process of the namespace.
INIT = (
    'use POSIX ":sys_wait_h"; $SIG{TERM} = sub { exit 0 }; '
    "$SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 }; "
    "while (1) { 1 while waitpid(-1, WNOHANG) > 0; sleep 1 }"
)

# The boot: run by `unshare` as the new namespace's PID 1, then it becomes INIT. $1 is the host
# folder, $2 the boot number, $3 1 for systemd, $4 1 when there are login users.
BOOT = r"""set -eu
root=$1 boot=$2 systemd=$3 users=$4
mount --bind "$root/nix" /nix
mount --bind "$root/var" /var
mount --bind "$root/shims" /usr/local/bin
mount --bind "$root/os-release" /etc/os-release
mount --bind "$root/etc-ssh" /etc/ssh
mount --bind "$root/root" /root
if [ "$users" = 1 ]; then
  for f in passwd group shadow; do mount --bind "$root/$f" /etc/$f; done
  mount --bind "$root/home" /home
fi
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/sshd /run/nixos /run/fleet-harness /var/log/fleet-harness
echo "$boot" > /run/fleet-harness/boot
if [ "$systemd" = 1 ]; then mkdir -p /run/systemd/system; fi
# what NixOS's stage 2 does: the profile's generation is both booted and current
if [ -e /nix/var/nix/profiles/system ]; then
  system=$(readlink -f /nix/var/nix/profiles/system)
  ln -s "$system" /run/booted-system
  ln -s "$system" /run/current-system
fi
mount --bind "$root/tmp" /tmp  # last: the host folder may be under /tmp
cd /
# login users reach the store through a daemon, as on a multi-user install (root's nix.conf
# says whom it trusts); it listens before sshd does, so no copy finds it missing
if [ "$users" = 1 ]; then
  socket=/nix/var/nix/daemon-socket/socket
  rm -f "$socket"
  setsid -f nix-daemon < /dev/null >> /var/log/nix-daemon.log 2>&1
  i=0; while [ ! -S "$socket" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done
fi
setsid -f /usr/sbin/sshd -D -E /var/log/sshd.log -f /etc/ssh/sshd_config
exec /usr/bin/perl -e "$5"
"""


# Every unshare is forked from this one long-lived thread: a parent-death signal fires when the
# thread that forked exits, and it must fire only when the test process does.
_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def spawn(argv: Sequence[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Starts `argv` (boot_argv) from the spawner thread, its output going to `log`."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-target-spawner")
        spawner = _spawner

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd="/",
            env={"PATH": TARGET_PATH, "HOME": "/root", "LC_ALL": "C"},
            start_new_session=True,  # a Ctrl-C meant for pytest is not the targets' to receive
        )

    return spawner.submit(start).result()


def missing_requirements() -> list[str]:
    """Why targets cannot run here (an empty list when they can)."""
    reasons = [] if os.geteuid() == 0 else ["target hosts need root (mount namespaces, sshd)"]
    for tool, package in [
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("setpriv", "util-linux"),
        ("flock", "util-linux"),
        (SSHD, "openssh-server"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("/usr/bin/perl", "perl-base"),
        ("/bin/bash", "bash"),
        ("/usr/bin/awk", "mawk"),
    ]:
        if shutil.which(tool) is None:
            reasons.append(f"{tool} not found (Debian package {package}; see scripts/system-deps)")
    return reasons


def namespace_pids(mnt_ns: str) -> list[int]:
    """Host pids of the processes in the mount namespace named `mnt_ns` ("mnt:[…]")."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == mnt_ns:
                    pids.append(int(entry))
            except OSError:
                continue  # gone meanwhile, or a kernel thread
    return pids


@dataclass
class Boot:
    number: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    init_pid: int = 0
    mnt_ns: str = ""
    mnt_fd: int | None = None

    def hold_namespace(self, pid: int) -> None:
        """Names the mount namespace of `pid` (its init) and holds it open until release_namespace():
        the kernel reuses a freed namespace's number at once (every `nix` call makes a namespace of
        its own), and namespace_pids() must never find another program's processes by it."""
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        self.mnt_fd, self.mnt_ns = fd, f"mnt:[{os.fstat(fd).st_ino}]"

    def release_namespace(self) -> None:
        if self.mnt_fd is not None:
            os.close(self.mnt_fd)
            self.mnt_fd = None


def boot_argv(root: Path, number: int, *, systemd: bool, users: bool) -> list[str]:
    """The command of boot `number` of the target whose folder is `root`: a new mount and PID
    namespace running BOOT, then INIT."""
    return [
        *("setpriv", "--pdeathsig", "KILL"),  # the test process dies: its targets die
        *("unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc", "--kill-child"),
        *("--", "/bin/sh", "-c", BOOT, "boot", str(root)),
        *(str(number), "1" if systemd else "0", "1" if users else "0", INIT),
    ]


def prepare_folder(
    root: Path,
    *,
    os_kind: OsKind,
    users: Sequence[str],
    client_key: Path,
    new_client_key: bool,
    sudoers: Sequence[str] = (),
    authorized_keys: Sequence[str] = (),
) -> None:
    """Makes the target's folder ready to boot: its mounts' folders, the calls log, the host key
    (kept across stop/start), root's nix.conf, /etc/os-release unless set, the shims, and the login
    users' accounts. Every user, root included, is authorised with `client_key`, generated first
    when `new_client_key` and not there yet; root also with `authorized_keys` (public key lines).
    `sudoers` (login users) get passwordless sudo and are trusted by the nix daemon, as an admin of
    a nix-darwin machine usually is."""
    for d in ["nix", "var/log/fleet-harness", "root", "etc-ssh/authorized_keys.d", "shims"]:
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "root").chmod(0o700)
    # writable by all: a program run by a login user records its call too
    log = root / "var" / PurePosixPath(CALLS_LOG).relative_to("/var")
    log.touch()
    log.chmod(0o666)
    for d in ["tmp", "var/tmp"]:
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d).chmod(0o1777)
    host_key = root / "etc-ssh" / "ssh_host_ed25519_key"
    if not host_key.exists():  # kept across stop/start: the target's identity
        keygen(host_key)
    if new_client_key and not client_key.exists():
        keygen(client_key)
    authorized = Path(f"{client_key}.pub").read_text()
    for user in ("root", *users):
        extra = "".join(f"{k}\n" for k in authorized_keys) if user == "root" else ""
        (root / "etc-ssh" / "authorized_keys.d" / user).write_text(authorized + extra)
    # root's nix.conf (nix reads ~/.config/nix): the target's nix builds like this machine's
    # fake systems, and warns of no missing nixbld group
    conf = root / "root/.config/nix/nix.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(TARGET_NIX_CONF + f"trusted-users = {' '.join(['root', *sudoers])}\n")
    if not (root / "os-release").exists():  # else kept: the target may have rewritten it (kexec, install)
        (root / "os-release").write_text(OS_RELEASE[os_kind])
    for name, text in SHIMS.items():
        shim = root / "shims" / name
        shim.write_text(text)
        shim.chmod(0o755)
    helper = root / "shims" / PurePosixPath(SUDO_HELPER).name
    helper.unlink(missing_ok=True)
    if users:
        gid = write_accounts(root, users, sudoers)
        if sudoers:  # root's, setuid, executable by the group only
            shutil.copyfile(shutil.which("setpriv") or "/usr/bin/setpriv", helper)
            os.chown(helper, 0, gid)
            helper.chmod(0o4750)


def write_accounts(root: Path, users: Sequence[str], sudoers: Sequence[str] = ()) -> int:
    """/etc/passwd and group: this machine's plus the login users and NOPASSWD_GROUP, whose members
    are `sudoers`; shadow: root and them only (no copy of this machine's hashes), each "*", no
    password but not locked, which sshd without PAM requires to accept a key. Returns the group's gid."""
    passwd, group = (Path("/etc", f).read_text() for f in ("passwd", "group"))
    shadow = "root:*:19000:0:99999:7:::\n"
    taken = {line.split(":")[2] for text in (passwd, group) for line in text.splitlines() if line.count(":") >= 3}
    free = (n for n in range(1000, 60000) if str(n) not in taken)
    for user, uid in zip(users, free, strict=False):
        passwd += f"{user}:x:{uid}:{uid}::/home/{user}:/bin/sh\n"
        group += f"{user}:x:{uid}:\n"
        shadow += f"{user}:*:19000:0:99999:7:::\n"
        home = root / "home" / user
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, uid, uid)
    gid = next(free)
    group += f"{NOPASSWD_GROUP}:x:{gid}:{','.join(sudoers)}\n"
    for name, text in (("passwd", passwd), ("group", group), ("shadow", shadow)):
        (root / name).write_text(text)
    (root / "shadow").chmod(0o640)
    return gid
