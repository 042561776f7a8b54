"""Installing NixOS on a target (reference/deploy.md §1, §9): the os-release of each stage, the
target's `nixos-install` and `nixos-facter` shims, the step of its reboot shim that boots the
installed disk, and the operator's `nixos-anywhere` shim (write_nixos_anywhere_shim; its program
is installer_shim.py, which stands alone).

A debian target becomes an installer (kexec: new os-release, same host key, same /nix), gets a tmpfs
on /mnt inside its own mount namespace (disko), the closure in /mnt/nix/store and the system profile
under /mnt (nixos-install), and on its next reboot boots "from the disk": BOOT_INSTALLED moves the
installation into its own /nix, /etc/ssh, /var and /root, and its os-release says NixOS.
"""

from __future__ import annotations

import json
import platform
import re
import sys
from pathlib import Path
from typing import Any, Literal

from fleet_sdk.testing.targethost.records import RECORD_AWK_VARIABLE, record_command

OsKind = Literal["nixos", "nixos-installer", "debian"]

OS_RELEASE: dict[str, str] = {
    "nixos": (
        'NAME=NixOS\nID=nixos\nVERSION="24.11 (Vicuna)"\nVERSION_CODENAME=vicuna\nVERSION_ID="24.11"\n'
        'PRETTY_NAME="NixOS 24.11 (Vicuna)"\nHOME_URL="https://nixos.org/"\n'
    ),
    # nixos-anywhere tells the kexec installer by VARIANT_ID (reference/deploy.md §1, get-facts.sh)
    "nixos-installer": (
        'NAME=NixOS\nID=nixos\nVERSION="24.11 (Vicuna)"\nVERSION_CODENAME=vicuna\nVERSION_ID="24.11"\n'
        'PRETTY_NAME="NixOS 24.11 (Vicuna)"\nVARIANT="NixOS installer"\nVARIANT_ID=installer\n'
    ),
    "debian": (
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
        'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
    ),
}


def os_kind_of(os_release: str) -> OsKind | None:
    """The kind an /etc/os-release text describes (ID, and VARIANT_ID=installer), None for another OS."""
    fields = dict(line.split("=", 1) for line in os_release.splitlines() if "=" in line)
    os_id, variant = (fields.get(k, "").strip("\"'") for k in ("ID", "VARIANT_ID"))
    if os_id == "nixos":
        return "nixos-installer" if variant == "installer" else "nixos"
    return "debian" if os_id == "debian" else None


# nixos-install as nixos-anywhere runs it in the installer (reference/deploy.md §1 row 8):
# `nixos-install --no-root-passwd --no-channel-copy --system <toplevel>`. Recorded; what it does for
# real is its essential step (§9, verified on Nix 2.8): the system profile of the new root, set to
# the toplevel already copied into /mnt/nix/store. The bootloader step (`nixos-enter --root /mnt`
# running `switch-to-configuration boot`) is not simulated: /mnt has no /bin/sh to chroot into.
NIXOS_INSTALL_SHIM = f"""#!/bin/bash
# Simulated nixos-install (fleet_sdk.testing.targethost.installer): records its argv to the calls log.
{RECORD_AWK_VARIABLE}{record_command("program=nixos-install")}
root=/mnt system=
while [ $# -gt 0 ]; do
  case $1 in
    --root) shift; root=${{1:-}} ;;
    --system) shift; system=${{1:-}} ;;
    --no-root-passwd|--no-root-password|--no-channel-copy|--no-bootloader) ;;
    *) echo "nixos-install (fleet test shim): option '$1' is not simulated" >&2; exit 1 ;;
  esac
  shift
done
if [ "$(id -u)" != 0 ]; then echo "nixos-install: must be run as root" >&2; exit 1; fi
if [ -z "$system" ]; then
  echo "nixos-install (fleet test shim): only --system <toplevel> is simulated" >&2; exit 1
fi
if ! mountpoint -q "$root"; then echo "nixos-install: $root is not a mount point (did disko run?)" >&2; exit 1; fi
if [ ! -e "$root$system" ]; then echo "error: path '$system' is not in the store of $root" >&2; exit 1; fi
echo "installing the system closure $system in $root..." >&2
mkdir -p "$root/nix/var/nix/profiles"
nix-env --store "$root" -p "$root/nix/var/nix/profiles/system" --set "$system"
mkdir -m 0755 -p "$root/etc"
touch "$root/etc/NIXOS"
echo "installation finished!" >&2
"""

# A small hardware report shaped like nixos-facter's (numtide/nixos-facter: version, system,
# virtualisation, hardware by class, smbios), for this machine's architecture.
FACTER_REPORT: dict[str, Any] = {
    "version": 1,
    "system": f"{platform.machine()}-linux",
    "virtualisation": "kvm",
    "hardware": {
        "cpu": [{"architecture": platform.machine(), "vendor_name": "AuthenticAMD", "units": 2}],
        "disk": [
            {
                "hardware_class": "disk",
                "model": "Virtio Block Device",
                "driver": "virtio-blk",
                "driver_module": "virtio_blk",
                "unix_device_names": ["/dev/disk/by-path/virtio-pci-0000:00:04.0", "/dev/vda"],
                "resources": [{"type": "size", "unit": "sectors", "value_1": 83886080, "value_2": 512}],
            }
        ],
        "network_interface": [
            {"hardware_class": "network_interface", "model": "Virtio Ethernet Card 0", "unix_device_names": ["eth0"]}
        ],
    },
    "smbios": {"system": {"manufacturer": "Hetzner", "product": "vServer"}},
}

# nixos-facter as nixos-anywhere's --generate-hardware-config runs it: `[sudo] nixos-facter > PATH`
# (reference/deploy.md §1 row 4). Records, then prints FACTER_REPORT.
NIXOS_FACTER_SHIM = f"""#!/bin/bash
# Simulated nixos-facter (fleet_sdk.testing.targethost.installer): records its argv to the calls log.
{RECORD_AWK_VARIABLE}{record_command("program=nixos-facter")}
if [ "$(id -u)" != 0 ]; then echo "nixos-facter: must be run as root" >&2; exit 1; fi
if [ $# -gt 0 ]; then echo "nixos-facter (fleet test shim): arguments are not simulated" >&2; exit 1; fi
cat <<'REPORT'
{json.dumps(FACTER_REPORT, indent=2)}
REPORT
"""

# Bash, for the reboot shims (shims.py): `boot_installed` runs before PID 1 ends. When the installer's
# /mnt (a mount of the target's own namespace, so never this machine's /mnt) holds an installation
# (nixos-install set /mnt/nix/var/nix/profiles/system), the reboot is into that disk (reference/deploy.md
# §1 row 9, §9): the closure goes into the target's own store and becomes the system profile's next
# generation, /mnt/etc/ssh, /mnt/var and /mnt/root (the extra files: host key, sops key …) go over
# the target's, modes kept, and /etc/os-release says NixOS, written in place (its bind mount follows
# the inode). The boot then points /run/current-system and /run/booted-system at the profile.
# Its output goes to INSTALL_BOOT_LOG; a failure records result=failed and the reboot does not happen.
INSTALL_BOOT_LOG = "/var/log/fleet-harness/install-boot.log"
BOOT_INSTALLED = f"""\
boot_installed() {{
  local profile=/mnt/nix/var/nix/profiles/system link system
  mountpoint -q /mnt && [ -L "$profile" ] || return 0
  link=$(readlink "$profile")
  case $link in /*) link=/mnt$link ;; *) link=/mnt/nix/var/nix/profiles/$link ;; esac
  system=$(readlink "$link")
  if ( set -e
    echo "booting the installed system $system"
    nix --extra-experimental-features nix-command copy --no-check-sigs --from 'local?root=/mnt' --to local "$system"
    nix-env -p /nix/var/nix/profiles/system --set "$system"
    for d in etc/ssh var root; do if [ -d "/mnt/$d" ]; then cp -a "/mnt/$d/." "/$d/"; fi; done
    cat > /etc/os-release <<'OSRELEASE'
{OS_RELEASE["nixos"]}OSRELEASE
  ) >> {INSTALL_BOOT_LOG} 2>&1; then
    {record_command('program=install-boot "system=$system" result=ok', argv=None)}
  else
    {record_command('program=install-boot "system=$system" result=failed', argv=None)}
    echo "reboot: booting the installation on /mnt failed; see {INSTALL_BOOT_LOG}" >&2
    return 1
  fi
}}
"""

_SHIM_PROGRAM = Path(__file__).with_name("installer_shim.py")


def write_nixos_anywhere_shim(bin_dir: Path, log: Path, *, timeout: float = 60.0) -> Path:
    """Writes `bin_dir`/nixos-anywhere, a stand-in for nixos-anywhere that installs FakeTargets
    (installer_shim.py says what it does), and returns its path. It appends one JSON line per call
    to `log` (FLEET_NIXOS_ANYWHERE_LOG overrides); `timeout` bounds each of its waits
    (FLEET_NIXOS_ANYWHERE_TIMEOUT overrides). Put `bin_dir` first on PATH."""
    source = _SHIM_PROGRAM.read_text()
    source = _bake(source, "LOG", str(log))
    source = _bake(source, "INSTALLER_OS_RELEASE", OS_RELEASE["nixos-installer"])
    source = _bake(source, "TIMEOUT", float(timeout))
    lines = source.splitlines(keepends=True)
    # -I: the standard library only, whatever PYTHONPATH the caller has (a shim never imports fleet_sdk)
    shim = bin_dir / "nixos-anywhere"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim.write_text(f"#!{sys.executable} -I\n" + "".join(lines[1:] if lines[0].startswith("#!") else lines))
    shim.chmod(0o755)
    return shim


def _bake(source: str, name: str, value: object) -> str:
    """`source` with the line `name = …  # baked in …` giving `value`."""
    baked, n = re.subn(
        rf"^{name} = .*?(  # baked in.*)$", lambda m: f"{name} = {value!r}{m[1]}", source, count=1, flags=re.M
    )
    if n != 1:
        raise RuntimeError(f"{_SHIM_PROGRAM} has no `{name} = …  # baked in` line")
    return baked
