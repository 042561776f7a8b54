"""Target hosts for tests: machines to deploy to, each a private mount and PID namespace on this
machine with a real OpenSSH server on 127.0.0.1, or on another loopback address of its own
(`address="127.0.0.2"`) (reference/deploy.md §9).

    from fleet_sdk.testing import FakeTarget
    host = FakeTarget(tmp_path / "web1").start()
    subprocess.run(["ssh", *host.ssh_options(), host.target, "true"], check=True)
    host.stop()

or the `target_hosts` pytest fixture (`target_hosts(2)`, `target_hosts.new("web1")`), which stops
them all when the test ends. Deploy code runs its real ssh, `nix copy` and switch-to-configuration
calls against a target; tests read the result from its state (`current_system()`,
`profile_generations()`) and from the JSON lines its programs append to CALLS_LOG (`calls()`).

What a target has of its own: /nix (an empty store at first, served by the machine's nix-store),
/var, /tmp, /root, /etc/ssh (host key, sshd_config, authorized_keys.d), /etc/os-release, a tmpfs
/run, and /usr/local/bin, which holds the shims: `systemd-run`, `systemctl`, `reboot`, `sudo`,
`nixos-install` and `nixos-facter`, recording their argv. Its sshd takes root's key and
PermitRootLogin prohibit-password, as NixOS does. With login users (`users=`) it has its own
/etc/passwd, group, shadow and /home, and a nix daemon; `sudoers=` gives some of them passwordless
sudo. Everything else (/usr, /etc, the network) is the machine's. Needs root, util-linux (unshare,
nsenter, setpriv, flock), OpenSSH's sshd and ssh-keygen, perl (the namespace's init) and bash (the
shims).

Installing NixOS on one (`FakeTarget(os_kind="debian")`): `write_nixos_anywhere_shim(bin, log)` puts a
`nixos-anywhere` on PATH that runs the kexec, disko, install and reboot phases against it over ssh;
the target becomes an installer, gets a tmpfs /mnt, and its next reboot boots the installation.

The package: `host` (FakeTarget's life cycle and listener) on `state` (readers of its state) on
`access` (ssh and nsenter); `fixture` (FakeTargets); `namespace` (its folder, the boot, PID 1);
`sshd`; `shims` (the scripts of /usr/local/bin, as data); `records` (CALLS_LOG and its writers);
`installer` (os-release kinds, the install shims, the nixos-anywhere shim whose program is
`installer_shim`).
"""

from fleet_sdk.testing.targethost.fixture import FakeTargets
from fleet_sdk.testing.targethost.host import FakeTarget
from fleet_sdk.testing.targethost.installer import (
    FACTER_REPORT,
    INSTALL_BOOT_LOG,
    OS_RELEASE,
    OsKind,
    os_kind_of,
    write_nixos_anywhere_shim,
)
from fleet_sdk.testing.targethost.namespace import TARGET_NIX_CONF, missing_requirements
from fleet_sdk.testing.targethost.records import (
    CALLS_LOG,
    RECORD_AWK,
    RECORD_AWK_VARIABLE,
    json_array_command,
    record_command,
)
from fleet_sdk.testing.targethost.shims import TARGET_PATH
from fleet_sdk.testing.targethost.sshd import LISTENER_ALIVE, SSHD, free_port, keygen
from fleet_sdk.testing.targethost.state import Generation

__all__ = [
    "CALLS_LOG",
    "FACTER_REPORT",
    "INSTALL_BOOT_LOG",
    "LISTENER_ALIVE",
    "OS_RELEASE",
    "RECORD_AWK",
    "RECORD_AWK_VARIABLE",
    "SSHD",
    "TARGET_NIX_CONF",
    "TARGET_PATH",
    "FakeTarget",
    "FakeTargets",
    "Generation",
    "OsKind",
    "free_port",
    "json_array_command",
    "keygen",
    "missing_requirements",
    "os_kind_of",
    "record_command",
    "write_nixos_anywhere_shim",
]
