#!/usr/bin/env python3
"""nixos-anywhere for tests: installer.write_nixos_anywhere_shim copies this program into a bin folder
as `nixos-anywhere`. It stands alone (the standard library, never fleet_sdk), so it shares no mistake
with the engine code it tests, and does what nixos-anywhere 91fc9b7 src/nixos-anywhere.sh does
(reference/deploy.md §1), against FakeTargets only, over real ssh:

- argv: the subset fleet_sdk.tools.nixos_anywhere builds; anything else fails (exit 1), as the real
  tool does. A reviewer's checks of the files it is handed: the -i key 0600; --extra-files a 0700
  folder of 0700/0755 folders and 0600 files (0644 for *.pub and var/lib/fleet/*.json), nothing else;
  each disk key 0600, its remote path absolute.
- one JSON line per call in LOG (FLEET_NIXOS_ANYWHERE_LOG overrides): argv, phases, target, port,
  the modes and sha256 of the files (never their bytes: they are secrets), result and error.
- kexec (row 3): skipped on an installer (VARIANT_ID=installer); else the target's os-release
  becomes the installer's, it reboots keeping its host key, and must come back as an installer.
- disko (row 7): the disk keys go to the installer (`umask 077; …; cat > R`), then a tmpfs on /mnt.
- install (row 8): the toplevel built here, copied to /mnt's store over ssh, the extra files
  unpacked over /mnt by tar, then the target's `nixos-install` (a shim).
- reboot (row 9): a detached `reboot`, then a wait until that boot has ended (no wait for the next).
Each wait ends by TIMEOUT (FLEET_NIXOS_ANYWHERE_TIMEOUT overrides). --build-on-remote is recorded
only: the fake systems build here, with this machine's /bin.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import posixpath
import shlex
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

LOG = ""  # baked in by write_nixos_anywhere_shim
INSTALLER_OS_RELEASE = ""  # baked in by write_nixos_anywhere_shim
TIMEOUT = 60.0  # baked in by write_nixos_anywhere_shim

PHASES = ("kexec", "disko", "install", "reboot")
# option: how many values it takes
_OPTIONS = {"--flake": 1, "--target-host": 1, "--ssh-port": 1, "-i": 1, "--ssh-option": 1, "--extra-files": 1}
_OPTIONS |= {"--disk-encryption-keys": 2, "--phases": 1, "--build-on-remote": 0, "--no-substitute-on-destination": 0}
_NIX_OPTIONS = ["--extra-experimental-features", "nix-command flakes", "--no-write-lock-file"]  # nixOptions
# a FakeTarget's boot writes this; the shim refuses any other host (it rewrites os-release, ends PID 1)
_HARNESS_MARK = "/run/fleet-harness/boot"
# A refusal or failure raises RuntimeError: its message goes to stderr and the log, the exit code is 1
# (the package's own exception classes live in fleet_sdk/errors.py, which this program cannot import).


@dataclass
class Request:
    argv: list[str]
    flake: str = ""
    attr: str = ""  # nixosConfigurations."M".config, as nixos-anywhere expands "#M"
    user: str = "root"
    host: str = ""
    port: int | None = None
    identity: str | None = None
    ssh_options: list[str] = field(default_factory=list)
    extra_files: str | None = None
    disk_keys: list[tuple[str, str]] = field(default_factory=list)
    phases: list[str] = field(default_factory=lambda: list(PHASES))
    build_on_remote: bool = False
    substitute: bool = True


def parse(argv: list[str]) -> Request:
    r = Request(argv)
    i = 0
    while i < len(argv):
        option = argv[i]
        if option not in _OPTIONS:
            raise RuntimeError(f"unknown option {option!r}" if option.startswith("-") else f"unexpected {option!r}")
        values = argv[i + 1 : i + 1 + _OPTIONS[option]]
        if len(values) < _OPTIONS[option]:
            raise RuntimeError(f"{option} needs {_OPTIONS[option]} value(s)")
        _take(r, option, values)
        i += 1 + len(values)
    if not r.flake:
        raise RuntimeError("--flake or --store-paths must be set")  # the real message
    if not r.host:
        raise RuntimeError("ssh-host must be set")
    return r


def _take(r: Request, option: str, values: list[str]) -> None:
    v = values[0] if values else ""
    r.build_on_remote |= option == "--build-on-remote"
    r.substitute &= option != "--no-substitute-on-destination"
    if option == "--flake":
        flake, sep, attr = v.rpartition("#")
        if not sep or not flake or not attr:
            raise RuntimeError(f"--flake {v!r}: name the NixOS configuration as a URI fragment, e.g. .#web1")
        r.flake = flake
        r.attr = attr if attr.startswith("nixosConfigurations.") else f'nixosConfigurations."{attr}".config'
    elif option == "--target-host":
        user, _, r.host = v.rpartition("@")
        r.user = user or "root"
    elif option == "--ssh-port":
        if not v.isdigit() or not 0 < int(v) < 65536:
            raise RuntimeError(f"--ssh-port {v!r} is not a port")
        r.port = int(v)
    elif option in ("-i", "--extra-files"):
        setattr(r, "identity" if option == "-i" else "extra_files", v)
    elif option == "--ssh-option":
        r.ssh_options.append(v)
    elif option == "--disk-encryption-keys":
        if not values[0].startswith("/"):
            raise RuntimeError(f"--disk-encryption-keys {values[0]!r}: the path in the installer must be absolute")
        r.disk_keys.append((values[0], values[1]))
    elif option == "--phases":
        if unknown := [p for p in v.split(",") if p not in PHASES]:
            raise RuntimeError(f"Unknown phase: {unknown[0]!r}")  # the real message
        r.phases = [p for p in PHASES if p in v.split(",")]  # they run in this order whatever the given one


# ---- the files: what the log says of them, and the reviewer's checks ----


def _mode(st: os.stat_result) -> str:
    return format(stat.S_IMODE(st.st_mode), "o")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tree(top: Path) -> list[tuple[str, os.stat_result]]:
    """Every entry below `top`, relative, with its lstat; symlinks are not followed."""
    found: list[tuple[str, os.stat_result]] = []
    for entry in sorted(os.scandir(top), key=lambda e: e.name):
        st = entry.stat(follow_symlinks=False)
        found.append((entry.name, st))
        if stat.S_ISDIR(st.st_mode):
            found += [(f"{entry.name}/{rel}", s) for rel, s in _tree(Path(entry.path))]
    return found


def _public(rel: str) -> bool:
    p = PurePosixPath(rel)
    return p.name.endswith(".pub") or (str(p.parent) == "var/lib/fleet" and p.suffix == ".json")


def _require(path: str, st: os.stat_result | None, modes: set[int], what: str, *, folder: bool = False) -> None:
    if st is None:
        raise RuntimeError(f"{path}: no such file ({what})")
    if not (stat.S_ISDIR if folder else stat.S_ISREG)(st.st_mode):
        raise RuntimeError(f"{path}: {what} must be a {'folder' if folder else 'regular file'}, not a {_kind(st)}")
    if stat.S_IMODE(st.st_mode) not in modes:
        allowed = " or ".join(f"0{m:o}" for m in sorted(modes))
        raise RuntimeError(f"{path} has mode 0{_mode(st)}; {what} must have mode {allowed}")


def _kind(st: os.stat_result) -> str:
    kinds = [(stat.S_ISLNK, "symlink"), (stat.S_ISDIR, "folder"), (stat.S_ISREG, "regular file")]
    return next((name for test, name in kinds if test(st.st_mode)), "special file")


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def check_files(r: Request, record: dict[str, Any]) -> None:
    """Records the files' modes and digests, all before any check fails, then checks them."""
    identity = _lstat(r.identity) if r.identity else None
    record["identity_mode"] = _mode(identity) if identity else None
    keys = [(remote, local, _lstat(local)) for remote, local in r.disk_keys]
    for remote, local, st in keys:
        if st and stat.S_ISREG(st.st_mode):
            record["disk_keys"][remote] = {"mode": _mode(st), "sha256": _sha256(local)}
    top = Path(r.extra_files) if r.extra_files else None
    entries = _tree(top) if top and top.is_dir() and not top.is_symlink() else []
    for rel, st in entries:
        if top and stat.S_ISREG(st.st_mode):
            record["extra_files"][rel] = {"mode": _mode(st), "sha256": _sha256(str(top / rel)), "size": st.st_size}
    if r.identity:
        _require(r.identity, identity, {0o600}, "the ssh key (-i)")
    for remote, local, st in keys:
        _require(local, st, {0o600}, f"the disk key for {remote}")
    if top is not None:
        _require(str(top), _lstat(str(top)), {0o700}, "the --extra-files folder", folder=True)
        for rel, st in entries:
            if stat.S_ISDIR(st.st_mode):
                _require(str(top / rel), st, {0o700, 0o755}, "a folder of --extra-files", folder=True)
            else:
                _require(str(top / rel), st, {0o600, 0o644} if _public(rel) else {0o600}, "an extra file")


# ---- the target ----


class Target:
    """ssh to the target as nixos-anywhere runs it: its options first (ssh takes an option's first
    value, so a --ssh-option cannot change them), then -p and the --ssh-options, then ours."""

    def __init__(self, r: Request) -> None:
        self.host, self.user, self.last = r.host, r.user, ""
        self.options = ["-o", "IdentitiesOnly=yes", *(["-i", r.identity] if r.identity else [])]
        self.options += ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"]
        self.options += ["-p", str(r.port)] if r.port else []
        for option in r.ssh_options:
            self.options += ["-o", option]
        self.options += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]

    def ssh(
        self, command: str, *, stdin: IO[bytes] | bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        argv = ["ssh", "-T", *self.options, f"{self.user}@{self.host}", command]
        data, handle = (stdin, None) if isinstance(stdin, bytes) else (None, stdin or subprocess.DEVNULL)
        done = subprocess.run(argv, input=data, stdin=handle, capture_output=True, timeout=timeout(), check=False)
        if check and done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip()[-1500:]
            raise RuntimeError(f"ssh {self.user}@{self.host} {command!r} failed (exit {done.returncode}): {tail}")
        return done

    def wait(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout()
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.user}@{self.host}: {what} within {timeout()} s {self.last}".rstrip())
            time.sleep(0.1)

    def answers(self) -> bool:
        done = self.ssh("exit 0", check=False)
        self.last = f"(ssh: {done.stderr.decode(errors='replace').strip()})" if done.returncode else ""
        if done.returncode == 255 and b"Permission denied" in done.stderr:
            raise RuntimeError(f"{self.user}@{self.host}: {self.last}")
        return done.returncode == 0

    def installer(self) -> bool:
        """get-facts.sh's isInstaller: VARIANT_ID=installer in /etc/os-release."""
        text = self.ssh("cat /etc/os-release").stdout.decode(errors="replace")
        return any(line.strip() in ("VARIANT_ID=installer", 'VARIANT_ID="installer"') for line in text.splitlines())

    def restart(self, script: str, *, stdin: bytes | None = None, back: bool) -> None:
        """Runs `script` (as root, through sudo for another user), which must end this boot soon,
        then waits until it has ended: until a new boot answers (`back`), or until the target
        answers no more or answers from a new boot (its /run lost our mark)."""
        mark = f"/run/nixos-anywhere-shim.{os.getpid()}.{time.monotonic_ns()}"
        sudo = "" if self.user == "root" else "sudo "
        self.ssh(f"{sudo}sh -c {shlex.quote(f'set -e; touch {mark}; {script}')}", stdin=stdin)
        self.user = "root"  # after kexec nixos-anywhere is root@ (its installer takes root's key)

        def ended() -> bool:
            code = self.ssh(f"test -e {mark}", check=False).returncode
            return code == 1 or (code == 255 and not back)

        self.wait("the reboot did not happen" if back else "the target did not go down", ended)


def timeout() -> float:
    return float(os.environ.get("FLEET_NIXOS_ANYWHERE_TIMEOUT") or TIMEOUT)


def step(message: str) -> None:
    print(f"### {message} ###", flush=True)


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout(), env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {shlex.join(argv)}\n{done.stderr.strip()[-2000:]}")
    return done.stdout


# ---- the phases ----


def kexec(t: Target) -> None:
    step("Switching system into kexec")
    # the kexec image boots the installer from RAM with the old system's host keys; here the same
    # namespace boots again with the installer's os-release, written in place (a bind-mounted file)
    t.restart("cat > /etc/os-release; setsid -f sh -c 'sleep 0.1; kill -TERM 1' < /dev/null > /dev/null 2>&1",
              stdin=INSTALLER_OS_RELEASE.encode(), back=True)  # fmt: skip
    # (nixos-anywhere connects to --post-kexec-ssh-port now, 22 by default; a FakeTarget keeps its port)
    if not t.installer():
        raise RuntimeError("Failed to kexec into NixOS installer")  # the real message


def disko(t: Target, r: Request) -> None:
    if not t.installer():
        raise RuntimeError(f"{t.host} is no NixOS installer (no VARIANT_ID=installer): disko runs in one only")
    for remote, local in r.disk_keys:
        step(f"Uploading {local} to {remote}")
        with open(local, "rb") as f:
            t.ssh(f"umask 077; mkdir -p {shlex.quote(posixpath.dirname(remote))}; cat > {shlex.quote(remote)}", stdin=f)
    step("Formatting hard drive with disko")
    # the disko script wipes the disks and mounts the new file systems on /mnt: here a tmpfs,
    # mounted inside the target's own mount namespace (this machine's /mnt is never touched)
    t.ssh("set -e; [ -d /mnt ]; if mountpoint -q /mnt; then umount -R /mnt; fi; mount -t tmpfs -o mode=0755 disko /mnt")


def build(r: Request) -> str:
    step("Building the system closure")
    installable = f"{r.flake}#{r.attr}.system.build.toplevel"
    out = _run(["nix", "build", *_NIX_OPTIONS, "--no-link", "--json", installable], f"building {installable}")
    path: str = json.loads(out)[0]["outputs"]["out"]  # Nix 2.8 has no --print-out-paths
    return path


def install(t: Target, r: Request, system: str) -> None:
    if t.ssh("findmnt -n -o FSTYPE /mnt", check=False).stdout.strip() != b"tmpfs":
        raise RuntimeError(f"{t.host}: nothing is mounted on /mnt: run the disko phase first")
    step("Uploading the system closure")
    if any(" " in o for o in t.options):
        raise RuntimeError(f"NIX_SSHOPTS cannot hold an ssh option with a space: {t.options}")
    env = {**os.environ, "NIX_SSHOPTS": " ".join(t.options)}
    store = f"ssh://root@{t.host}?remote-store=local%3Froot=%2Fmnt&compress=true"
    substitute = ["--substitute-on-destination"] if r.substitute else []
    _run(["nix", "copy", *_NIX_OPTIONS, *substitute, "--to", store, system], "copying the closure", env)
    if r.extra_files:
        step("Copying extra files")
        tar = subprocess.Popen(["tar", "-C", r.extra_files, "-cpf-", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            t.ssh("tar -C /mnt -xf- --no-same-owner", stdin=tar.stdout)
        finally:
            tar.stdout.close()
            tar.wait(timeout())
        if tar.returncode != 0:
            raise RuntimeError(f"tar -C {r.extra_files} -cpf- . failed (exit {tar.returncode})")
        t.ssh("chmod 755 /mnt")  # tar also changes permissions of /mnt
    step("Installing NixOS")
    t.ssh(
        'set -eu; export PATH="$PATH:/run/current-system/sw/bin"; '
        "if [ ! -d /mnt/tmp ]; then mkdir -p /mnt/tmp; chmod 777 /mnt/tmp; fi; "
        f"nixos-install --no-root-passwd --no-channel-copy --system {shlex.quote(system)}"
    )


def reboot(t: Target) -> None:
    step("Rebooting, then waiting for the machine to become unreachable")
    t.restart("nohup sh -c 'sleep 0.1 && reboot' < /dev/null > /dev/null 2>&1 &", back=False)


def run(r: Request) -> None:
    stall = os.environ.get("FLEET_NIXOS_ANYWHERE_STALL")
    if stall and stall in r.phases:  # a test kills the install here: a run that dies in this phase
        time.sleep(3600)
    system = build(r) if "install" in r.phases else None  # built first, as nixos-anywhere does
    t = Target(r)
    if "kexec" not in r.phases:
        t.user = "root"  # nixos-anywhere assumes the kexec ran
    t.wait("ssh did not answer", t.answers)
    if t.ssh(f"test -e {_HARNESS_MARK}", check=False).returncode != 0:
        raise RuntimeError(f"{t.host} is no FakeTarget (no {_HARNESS_MARK}): this shim installs test targets only")
    if "kexec" in r.phases and not t.installer():
        kexec(t)
    t.user = "root"
    if "disko" in r.phases:
        disko(t, r)
    if system is not None:
        install(t, r, system)
    if "reboot" in r.phases:
        reboot(t)


def append_log(record: dict[str, Any]) -> None:
    path = os.environ.get("FLEET_NIXOS_ANYWHERE_LOG") or LOG
    if path:
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # whole lines when installs run side by side
            f.write(json.dumps(record) + "\n")


def main(argv: list[str]) -> int:
    record: dict[str, Any] = {
        **{"argv": argv, "phases": [], "target": None, "port": None, "identity_mode": None},
        **{"extra_files": {}, "disk_keys": {}, "result": "failed", "error": None},
    }
    try:
        r = parse(argv)
        record.update(phases=r.phases, target=f"{r.user}@{r.host}", port=r.port)
        check_files(r, record)
        run(r)
        record["result"] = "ok"
        return 0
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        record["error"] = str(e) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
        print(f"nixos-anywhere (fleet test shim): {record['error']}", file=sys.stderr)
        return 1
    finally:
        append_log(record)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
