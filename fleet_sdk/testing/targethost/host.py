"""FakeTarget: one target host, its life cycle (start, stop, reboot, boots after the reboot shim)
and its sshd listener; what it is made of lives in the sibling modules."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from typing_extensions import override

from fleet_sdk.errors import FleetError
from fleet_sdk.testing.targethost.installer import BOOT_INSTALLED, OS_RELEASE, OsKind, os_kind_of
from fleet_sdk.testing.targethost.namespace import (
    Boot,
    boot_argv,
    missing_requirements,
    namespace_pids,
    prepare_folder,
    spawn,
)
from fleet_sdk.testing.targethost.records import RECORD_AWK_VARIABLE
from fleet_sdk.testing.targethost.sshd import LISTENER_ALIVE, LOOPBACK, SSHD, SSHD_CONFIG, connects, free_port
from fleet_sdk.testing.targethost.state import TargetState


class FakeTarget(TargetState):
    """One target host. `start()` boots it; `stop()` ends every process it has. Its folder `root`
    (on this machine) holds its /nix, /var, /tmp and keys, and stays for inspection after stop."""

    def __init__(
        self,
        root: Path,
        *,
        name: str | None = None,
        os_kind: OsKind = "nixos",
        systemd: bool = False,
        users: Sequence[str] = (),
        sudoers: Sequence[str] = (),
        client_key: Path | None = None,
        authorized_keys: Sequence[str] = (),
        address: str = LOOPBACK,
        reboot_delay: float = 0.2,
        timeout: float = 10.0,
    ) -> None:
        """`os_kind`: its /etc/os-release when its folder has none yet (then the target's own, which
        a kexec or an install rewrites: `current_os()` reads it). `systemd`: /run/systemd/system
        exists, so deploy code takes its systemd-run branch (the shim); without it, systemd-run fails
        as on a machine without systemd. `users`: login users besides root (the first uids from 1000 this machine
        has not taken), authorised with root's key; they reach the store through a nix daemon.
        `sudoers`: those of `users` with passwordless sudo (the `sudo` shim), whom the daemon
        trusts; the others' sudo asks for a password. `client_key`: the private key to authorise (one
        is generated otherwise). `authorized_keys`: public key lines root takes besides it (a cloud
        server's: the keys its provider was given). `address`: the loopback address (127.0.0.0/8) its
        sshd listens on; on one of its own a target can stand for a server reached by address alone
        (an ssh config giving each address its target's port). `reboot_delay`: how long a reboot
        keeps the target down.
        `timeout`: the deadline of every wait (boot, listener, stop)."""
        self.root = root.resolve()
        self.name = name or self.root.name
        self.os_kind: OsKind = os_kind
        self.systemd = systemd
        self.users = tuple(users)
        self.sudoers = tuple(sudoers)
        if strangers := [u for u in self.sudoers if u not in self.users]:
            raise ValueError(f"sudoers {strangers} are not among the login users {list(self.users)}")
        if not _loopback(address):
            raise ValueError(f"address {address!r} is not an IPv4 loopback address (127.0.0.0/8)")
        self.address = address
        self.authorized_keys = tuple(k.strip() for k in authorized_keys)
        self.reboot_delay = reboot_delay
        self.timeout = timeout
        self.port = 0
        self._client_key = client_key
        self._lock = threading.RLock()
        self._booted = threading.Condition(self._lock)
        self._boot: Boot | None = None
        self._boots = 0
        self._stopping = False
        self._ready = False
        self._failure: BaseException | None = None
        self._watchers: list[threading.Thread] = []

    @override
    def __repr__(self) -> str:
        return f"FakeTarget({self.name!r}, {self.target!r}, boot {self._boots})"

    # ---- life cycle ----

    def start(self) -> FakeTarget:
        """Boots the target and returns once its sshd listens."""
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """The first half of start(): prepare the folder and begin the boot (to start many at once)."""
        with self._lock:
            if self._boot is not None:
                raise FleetError(f"target {self.name} is already running")
            if reasons := missing_requirements():
                raise FleetError(f"target {self.name} cannot run here: {'; '.join(reasons)}")
            self._stopping = False
            self._failure = None
            self._prepare()
            self._launch()

    def wait_ready(self) -> FakeTarget:
        """The second half of start(): wait for the listener; on a taken port, boot on another."""
        with self._lock:
            try:
                for _ in range(5):
                    if self._await_listener():
                        return self
                    self._halt()  # another process took the port after free_port()
                    self.port = free_port(self.address)
                    self._write_sshd_config()
                    self._launch()
                raise FleetError(f"target {self.name}: no free port for sshd after 5 tries")
            except BaseException:
                self._halt()
                raise

    def stop(self) -> None:
        """Ends every process of the target (sshd, sessions, detached jobs) and waits until they are gone."""
        with self._lock:
            self._stopping = True
            self._halt()
            watchers, self._watchers = self._watchers, []
        for w in watchers:
            w.join(self.timeout)

    def reboot(self) -> None:
        """Power-cycles the target: every process ends, /run starts empty, and /run/booted-system
        and /run/current-system are the system profile's generation, as NixOS's stage 2 sets them.
        An installer with an installation on /mnt boots it, as after the reboot shim."""
        with self._lock:
            self._check_running()
            self.run(["/bin/bash", "-c", f"{RECORD_AWK_VARIABLE}{BOOT_INSTALLED}boot_installed"])
            self._halt()
            self._launch()
            try:
                self._require_listener()
            except BaseException:
                self._halt()
                raise

    def wait_for_boot(self, number: int, timeout: float | None = None) -> None:
        """Waits until boot `number` (see `boot`) is up, e.g. after the reboot shim ran."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._booted:
            while not (self._boots >= number and self._ready):
                if self._failure is not None:
                    raise FleetError(f"target {self.name}: reboot failed: {self._failure}")
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    raise FleetError(f"target {self.name}: boot {number} not up within the deadline")
                self._booted.wait(left)

    @property
    def boot(self) -> int:
        """How many times the target has booted (1 after start)."""
        return self._boots

    # ---- the listener ----

    def kill_listener(self) -> None:
        """Ends sshd's listener: new connections are refused, open sessions carry on."""
        self.run(f"{LISTENER_ALIVE} && kill $pid; true")
        deadline = time.monotonic() + self.timeout
        while connects(self.port, self.address):
            if time.monotonic() > deadline:
                raise FleetError(f"target {self.name}: port {self.port} still accepts after killing sshd")
            time.sleep(0.01)

    def restart_listener(self) -> None:
        """Starts sshd again (ending the listener first when one runs), as a switch that restarts sshd."""
        with self._lock:
            self.run(f"if {LISTENER_ALIVE}; then kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.01; done; fi")
            offset = self._sshd_log_size()
            # no descriptor of ours: run() returns when its output closes
            self.run(f"setsid -f {SSHD} -D -E /var/log/sshd.log -f /etc/ssh/sshd_config < /dev/null > /dev/null 2>&1")
            self._require_listener(offset)

    # ---- changing it ----

    def set_os(self, kind: OsKind) -> None:
        """Rewrites /etc/os-release, in place: the target's bind mount follows the inode, not the name."""
        self.os_kind = kind
        (self.root / "os-release").write_text(OS_RELEASE[kind])  # truncates the same inode

    def current_os(self) -> OsKind | None:
        """What its /etc/os-release says now (None for an OS other than debian, nixos and the
        installer); readable while the target is down too."""
        return os_kind_of((self.root / "os-release").read_text())

    def set_systemd(self, enabled: bool) -> None:
        """Creates or removes /run/systemd/system now and for the boots to come."""
        self.systemd = enabled
        if self.running:
            self.run("mkdir -p /run/systemd/system" if enabled else "rm -rf /run/systemd/system")

    def install(self, toplevel: str) -> None:
        """As if the target had been installed with `toplevel`: it is copied from this machine's
        store into the target's, becomes the system profile's next generation, and the target
        (re)boots into it."""
        store = f"local?root={self.root}"
        subprocess.run(
            ["nix", "copy", "--no-check-sigs", "--to", store, toplevel],
            check=True,
            capture_output=True,
            env={**os.environ, "NIX_CONFIG": "experimental-features = nix-command\nsubstituters =\n"},
        )
        profile = self.root / "nix/var/nix/profiles/system"
        subprocess.run(
            ["nix-env", "--store", store, "-p", str(profile), "--set", toplevel], check=True, capture_output=True
        )
        if self.running:
            self.reboot()

    # ---- internals ----

    def _prepare(self) -> None:
        prepare_folder(
            self.root,
            os_kind=self.os_kind,
            users=self.users,
            sudoers=self.sudoers,
            client_key=self.client_key,
            new_client_key=self._client_key is None,
            authorized_keys=self.authorized_keys,
        )
        if not self.port:
            self.port = free_port(self.address)
        self._write_sshd_config()

    def _write_sshd_config(self) -> None:
        config = SSHD_CONFIG.format(address=self.address, port=self.port)
        (self.root / "etc-ssh" / "sshd_config").write_text(config)
        self.known_hosts.write_text(self.known_hosts_line() + "\n")

    def _sshd_log_size(self) -> int:
        try:
            return (self.root / "var/log/sshd.log").stat().st_size
        except FileNotFoundError:
            return 0

    def _launch(self) -> None:
        """Begins boot number `self._boots + 1` (the lock is held)."""
        self._ready = False
        self._listener_offset = self._sshd_log_size()
        # the host key of this boot: an install may have brought another (installer.BOOT_INSTALLED)
        self.known_hosts.write_text(self.known_hosts_line() + "\n")
        log = open(self.root / "boot.log", "ab")  # noqa: SIM115 - closed by _halt
        argv = boot_argv(self.root, self._boots + 1, systemd=self.systemd, users=bool(self.users))
        try:
            proc = spawn(argv, log)
        except BaseException:
            log.close()
            raise
        self._boots += 1
        self._boot = Boot(self._boots, proc, log)

    def _require_listener(self, offset: int | None = None) -> None:
        if not self._await_listener(offset):
            raise FleetError(f"target {self.name}: port {self.port} is taken by another process")

    def _await_listener(self, offset: int | None = None) -> bool:
        """Waits for the sshd of the current boot to listen; False when it could not bind its port
        (the lock is held)."""
        boot = self._boot
        assert boot is not None
        start = self._listener_offset if offset is None else offset
        deadline = time.monotonic() + self.timeout
        children = Path(f"/proc/{boot.proc.pid}/task/{boot.proc.pid}/children")
        ready = f"Server listening on {self.address} port {self.port}."
        while True:
            if not boot.init_pid:
                try:
                    pids = children.read_text().split()
                except OSError:
                    pids = []
                if pids:
                    with contextlib.suppress(OSError):  # a failed boot: its exit is noticed below
                        boot.hold_namespace(int(pids[0]))
                        boot.init_pid = int(pids[0])
            log = self.root / "var/log/sshd.log"
            text = log.read_bytes()[start:].decode(errors="replace") if log.exists() else ""
            if ready in text and boot.init_pid:
                break
            if "Cannot bind any address" in text or "Address already in use" in text:
                return False
            if boot.proc.poll() is not None:
                tail = (self.root / "boot.log").read_text(errors="replace")[-2000:]
                raise FleetError(f"target {self.name}: boot {boot.number} failed:\n{tail}{text[-2000:]}")
            if time.monotonic() > deadline:
                raise FleetError(f"target {self.name}: sshd not listening after {self.timeout}s:\n{text[-2000:]}")
            time.sleep(0.005)
        self._ready = True
        self._booted.notify_all()
        if offset is None:  # a new boot: watch for the target ending it itself (the reboot shim)
            watcher = threading.Thread(target=self._watch, args=(boot,), name=f"fleet-target-{self.name}", daemon=True)
            self._watchers = [w for w in self._watchers if w.is_alive()] + [watcher]
            watcher.start()
        return True

    def _watch(self, boot: Boot) -> None:
        boot.proc.wait()
        with self._lock:
            if self._stopping or self._boot is not boot:
                return  # the harness ended it
        time.sleep(self.reboot_delay)
        with self._lock:
            if self._stopping or self._boot is not boot:
                return  # the harness ended it
            try:
                self._halt()
                self._launch()
                self._require_listener()
            except BaseException as e:  # surfaced by wait_for_boot
                self._failure = e
                self._booted.notify_all()

    def _halt(self) -> None:
        """Ends the current boot: PID 1 of the namespace gets SIGKILL, so the kernel ends every
        other process in it; then checks nothing is left (the lock is held)."""
        boot, self._boot = self._boot, None
        self._ready = False
        if boot is None:
            return
        try:
            if boot.init_pid and boot.proc.poll() is None:  # else unshare reaped it: the pid may be reused
                with contextlib.suppress(ProcessLookupError):
                    os.kill(boot.init_pid, signal.SIGKILL)
            boot.proc.kill()
            try:
                boot.proc.wait(self.timeout)
            except subprocess.TimeoutExpired:
                raise FleetError(f"target {self.name}: unshare {boot.proc.pid} did not exit") from None
            deadline = time.monotonic() + self.timeout
            while boot.mnt_ns and (left := namespace_pids(boot.mnt_ns)):
                # only a process that joined the mount namespace alone (nsenter -m) can be here
                for pid in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                if time.monotonic() > deadline:
                    raise FleetError(f"target {self.name}: processes {left} outlived the namespace")
                time.sleep(0.01)
        finally:
            boot.release_namespace()
            boot.log.close()


def _loopback(address: str) -> bool:
    try:
        return ipaddress.IPv4Address(address).is_loopback
    except ValueError:
        return False
