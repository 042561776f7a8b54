"""Fake NixOS and nix-darwin systems built by the real nix, without nixpkgs (reference/deploy.md §9).

    flake = FakeFlake(tmp_path / "flake", {"web1": FakeSystem(version="24.11.1")})
    flake.out_path("web1")     # nix eval, no build: what a deploy would key on
    path = flake.build("web1") # a real store path, in this machine's store
    flake.set("web1", behaviour="exit4")  # the next generation fails a unit

The flake (`path:` + folder) has `nixosConfigurations.<m>.config.system.build.toplevel` and, for
darwin machines, `darwinConfigurations.<m>.system`. A NixOS toplevel holds `nixos-version`,
`kernel`, `initrd` and `kernel-modules` (links into small paths of their own, so a kernel bump is a
"needs reboot"), `activate` and `bin/switch-to-configuration`; a darwin one holds `darwin-version`,
`systemConfig`, `activate`, `activate-user` and `sw/bin/darwin-rebuild`. Their programs run on a
FakeTarget and record each call to its CALLS_LOG (see FakeSystem for what they do).

Every nix call needs NIX_CONFIG (Debian's Nix 2.8: flakes are experimental, builds run without
sandbox or build users, and no binary cache is asked); `nix_env()` gives an environment with it for
code under test that runs nix itself.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from fleet_sdk.errors import CommandError
from fleet_sdk.testing.targethost import (
    LISTENER_ALIVE,
    RECORD_AWK_VARIABLE,
    SSHD,
    json_array_command,
    record_command,
)

Behaviour = Literal["ok", "exit2", "exit4", "inhibit", "kill-ssh", "hang"]

# `substituters =`: each build would wait about 5 s on the unreachable cache otherwise
NIX_CONFIG = """\
experimental-features = nix-command flakes
sandbox = false
build-users-group =
substituters =
flake-registry =
"""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


@dataclass(frozen=True)
class FakeSystem:
    """One machine's fake system. Changing any field changes its store path.

    `behaviour` is what its switch-to-configuration (darwin: `activate`) does once it holds the lock:
    - `ok`: points /run/current-system at itself (switch, test), starts sshd when no listener runs
      (a switch restarting sshd: the good generation brings back what a bad one broke), exits 0;
    - `exit2`, `exit4`: as `ok`, then exits 2 (an activation snippet failed) or 4 (a unit failed);
    - `inhibit`: "Pre-switch checks failed", exit 1, nothing changed, unless NIXOS_NO_CHECK=1
      (`boot` runs no checks);
    - `kill-ssh`: activates, then ends the sshd listener (open sessions stay) and exits 0;
    - `hang`: activates, then sleeps for a day holding the lock and its output.
    `boot` and `dry-activate` only record and exit 0. `extra` is free text, for a new closure
    without a new version."""

    version: str = "24.11.20250101.fake"
    kernel: str = "6.6.1"
    behaviour: Behaviour = "ok"
    darwin: bool = False
    extra: str = ""

    def __post_init__(self) -> None:
        for field in ("version", "kernel"):
            if not _VERSION.fullmatch(getattr(self, field)):
                raise ValueError(f"{field} {getattr(self, field)!r}: letters, digits, '.', '_', '+', '-'")
        if self.behaviour not in get_args(Behaviour):
            raise ValueError(f"behaviour {self.behaviour!r} is not one of {', '.join(get_args(Behaviour))}")


def nix_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (this process's environment by default) with NIX_CONFIG added to."""
    env = dict(os.environ if base is None else base)
    env["NIX_CONFIG"] = env.get("NIX_CONFIG", "") + "\n" + NIX_CONFIG
    return env


def nix_system() -> str:
    """This machine's nix system, which the fake derivations are built for."""
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine()]
    return f"{arch}-linux"


# ---- the flake's files ----

_FLAKE = """\
# Fake systems for tests (fleet_sdk.testing.fakesystem): plain derivations, no nixpkgs.
{
  outputs = { self }:
    let
      machines = builtins.fromJSON (builtins.readFile ./machines.json);
      names = darwin: builtins.filter (n: machines.${n}.darwin == darwin) (builtins.attrNames machines);
      pick = darwin: f: builtins.listToAttrs (map (n: { name = n; value = f n machines.${n}; }) (names darwin));
      build = attrs: derivation ({ builder = "/bin/sh"; args = [ "-e" ./builder.sh ]; } // attrs);
      part = m: part: name: build { inherit name part; inherit (m) system; kernelVersion = m.kernel; };
      toplevel = name: m:
        let
          kernel = part m "kernel" "linux-${m.kernel}";
          initrd = part m "initrd" "initrd-linux-${m.kernel}";
          modules = part m "modules" "linux-${m.kernel}-modules";
        in build ({
          name = (if m.darwin then "darwin-system-" else "nixos-system-") + "${name}-${m.version}";
          part = if m.darwin then "darwin" else "nixos";
          inherit (m) system version behaviour extra;
          activate = if m.darwin then ./darwin-activate.sh else ./activate.sh;
        } // (if m.darwin then { darwinRebuild = ./darwin-rebuild.sh; } else {
          stc = ./switch-to-configuration.sh;
          kernel = "${kernel}/bzImage";
          initrd = "${initrd}/initrd";
          modules = "${modules}";
        }));
    in {
      nixosConfigurations = pick false (n: m: { config.system.build.toplevel = toplevel n m; });
      darwinConfigurations = pick true (n: m:
        let t = toplevel n m; in { system = t; config.system.build.toplevel = t; });
    };
}
"""

# The builder: nix runs it with PATH unset, hence /bin/… everywhere.
_BUILDER = """\
# Builds one part of a fake system (fleet_sdk.testing.fakesystem).
script() { /bin/sed "s|@out@|$out|g" "$1" > "$2"; /bin/chmod 0555 "$2"; }
case $part in
  kernel) /bin/mkdir "$out"; printf 'fake kernel %s\\n' "$kernelVersion" > "$out/bzImage" ;;
  initrd) /bin/mkdir "$out"; printf 'fake initrd %s\\n' "$kernelVersion" > "$out/initrd" ;;
  modules) /bin/mkdir -p "$out/lib/modules/$kernelVersion" ;;
  nixos)
    /bin/mkdir -p "$out/bin" "$out/etc"
    printf %s "$version" > "$out/nixos-version"
    printf %s "$behaviour" > "$out/etc/behaviour"
    printf %s "$extra" > "$out/etc/extra"
    /bin/ln -s "$kernel" "$out/kernel"
    /bin/ln -s "$initrd" "$out/initrd"
    /bin/ln -s "$modules" "$out/kernel-modules"
    script "$activate" "$out/activate"
    script "$stc" "$out/bin/switch-to-configuration" ;;
  darwin)
    /bin/mkdir -p "$out/sw/bin" "$out/etc"
    printf %s "$version" > "$out/darwin-version"
    printf %s "$out" > "$out/systemConfig"
    printf %s "$behaviour" > "$out/etc/behaviour"
    printf %s "$extra" > "$out/etc/extra"
    script "$activate" "$out/activate"
    printf '#! /bin/sh\\n# nix-darwin: deprecated\\n' > "$out/activate-user"
    /bin/chmod 0555 "$out/activate-user"
    script "$darwinRebuild" "$out/sw/bin/darwin-rebuild" ;;
esac
"""


def _preamble(program: str) -> str:
    """Shell: the start of each program, defining `record FIELD…`, which appends its record: the
    argv, the session it runs in and the environment switch-to-configuration reads."""
    fields = (
        f'program={program} "toplevel=$out" "behaviour=$behaviour" "pid:$$" "sid:$sid" "detached:$detached" '
        '"$@" "$bootloader" "$no_check" "argv:$argv"'
    )
    return f"""\
{RECORD_AWK_VARIABLE}out=@out@
behaviour=$(cat "$out/etc/behaviour")
argv=$({json_array_command()})
{_SESSION}{_ENVIRONMENT}record() {{ {record_command(fields, argv=None)}; }}
"""


# Shell: a variable of the environment as a field, null when unset.
_ENVIRONMENT = """\
bootloader=NIXOS_INSTALL_BOOTLOADER:null no_check=NIXOS_NO_CHECK:null
[ -z "${NIXOS_INSTALL_BOOTLOADER+x}" ] || bootloader="NIXOS_INSTALL_BOOTLOADER=$NIXOS_INSTALL_BOOTLOADER"
[ -z "${NIXOS_NO_CHECK+x}" ] || no_check="NIXOS_NO_CHECK=$NIXOS_NO_CHECK"
"""

# Shell: the session this runs in. `detached` is true unless the session leader is a child of sshd,
# i.e. unless ending the ssh connection hangs this process up (setsid, the systemd-run shim, nohup
# not counted). /proc/N/stat is split after the ")" ending the command name.
_SESSION = """\
stat() { s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; echo "$s"; }
sid=$(set -- $(stat $$); echo "$4")
detached=true
if leader=$(stat "$sid"); then
  ppid=$(set -- $leader; echo "$2")
  [ "$(cat "/proc/$ppid/comm" 2>/dev/null)" = sshd ] && detached=false
fi
"""

# Shell, after the lock and the checks: activation, then what `behaviour` says. Background processes
# get none of our descriptors, so neither the lock (fd 9) nor the ssh session stays held by them.
_ACTIVATE_AND_BEHAVE = f"""\
echo "activating the configuration..." >&2
ln -sfn "$out" /run/current-system
case $behaviour in
  kill-ssh) if {LISTENER_ALIVE}; then kill "$pid"; fi; exit 0 ;;
  hang) exec sleep 86400 ;;
esac
if ! {{ {LISTENER_ALIVE}; }}; then
  echo "restarting the following units: sshd.service" >&2
  rm -f /run/sshd.pid
  setsid -f {SSHD} -D -E /var/log/sshd.log -f /etc/ssh/sshd_config < /dev/null > /dev/null 2>&1 9>&-
  # as systemd's restart returns once the unit is up: sshd writes its pid file after it listens
  i=0; while [ ! -s /run/sshd.pid ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
fi
case $behaviour in
  exit2) echo "Activation script snippet 'fake' failed (1)" >&2; exit 2 ;;
  exit4) echo "warning: the following units failed: fake.service" >&2; exit 4 ;;
esac
exit 0
"""

_STC = f"""\
#!/bin/sh
# Fake switch-to-configuration (fleet_sdk.testing.fakesystem; exit codes and lock as
# reference/deploy.md §6): records each call, takes the switch lock, activates, behaves.
{_preamble("switch-to-configuration")}action=${{1:-}}
case $action in
  switch|boot|test|dry-activate) ;;
  *) record lock=none; echo "Usage: $0 [switch|boot|test|dry-activate]" >&2; exit 1 ;;
esac
mkdir -p /run/nixos
exec 9>> /run/nixos/switch-to-configuration.lock
if ! flock -n 9; then
  record lock=busy "action=$action"
  echo "Could not acquire lock" >&2
  exit 1
fi
record lock=acquired "action=$action"
if [ "$(id -u)" != 0 ]; then echo "switch-to-configuration: must run as root" >&2; exit 1; fi
case $action in boot|dry-activate) exit 0 ;; esac
if [ "$behaviour" = inhibit ] && [ "${{NIXOS_NO_CHECK:-}}" != 1 ]; then
  echo "Pre-switch checks failed" >&2
  exit 1
fi
{_ACTIVATE_AND_BEHAVE}"""

# NixOS's `activate`, as stage 2 and switch-to-configuration run it: sets /run/current-system.
_ACTIVATE = f"""\
#!/bin/sh
# Fake NixOS activation script (fleet_sdk.testing.fakesystem).
{_preamble("activate")}record
ln -sfn "$out" /run/current-system
"""

# nix-darwin's `activate` (reference/deploy.md §5): root only, no lock, no test/boot split.
_DARWIN_ACTIVATE = f"""\
#!/bin/sh
# Fake nix-darwin activation script (fleet_sdk.testing.fakesystem).
{_preamble("activate")}record
if [ "$(id -u)" != 0 ]; then echo "$0 must be run as root" >&2; exit 2; fi
{_ACTIVATE_AND_BEHAVE}"""

_DARWIN_REBUILD = f"""\
#!/bin/sh
# Fake darwin-rebuild (fleet_sdk.testing.fakesystem): only `activate`, which activates the closure
# this program belongs to, as the real one does.
{_preamble("darwin-rebuild")}record
if [ "$(id -u)" != 0 ]; then echo "system activation must now be run as root" >&2; exit 1; fi
[ "${{1:-}}" = activate ] || {{ echo "darwin-rebuild (fake): only 'activate' is simulated" >&2; exit 1; }}
exec "$out/activate"
"""

_FILES = {
    "flake.nix": _FLAKE,
    "builder.sh": _BUILDER,
    "switch-to-configuration.sh": _STC,
    "activate.sh": _ACTIVATE,
    "darwin-activate.sh": _DARWIN_ACTIVATE,
    "darwin-rebuild.sh": _DARWIN_REBUILD,
}


class FakeFlake:
    """A `path:` flake in `directory` with a fake system per machine (machines.json holds them)."""

    def __init__(self, directory: Path, machines: Mapping[str, FakeSystem] | None = None) -> None:
        self.directory = directory.resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, text in _FILES.items():
            (self.directory / name).write_text(text)
        self.machines: dict[str, FakeSystem] = {}
        for name, system in (machines or {}).items():
            self._check_name(name)
            self.machines[name] = system
        self._write()

    def set(self, name: str, system: FakeSystem | None = None, **changes: Any) -> FakeSystem:
        """Sets machine `name` to `system` (its current one, or the default, when None) with `changes`."""
        self._check_name(name)
        base = system or self.machines.get(name) or FakeSystem()
        self.machines[name] = replace(base, **changes)
        self._write()
        return self.machines[name]

    @property
    def ref(self) -> str:
        return f"path:{self.directory}"

    def attr(self, name: str) -> str:
        """The attribute path deploy tools build for `name`."""
        if self.machines[name].darwin:
            return f"darwinConfigurations.{name}.system"
        return f"nixosConfigurations.{name}.config.system.build.toplevel"

    def installable(self, name: str) -> str:
        return f"{self.ref}#{self.attr(name)}"

    def out_path(self, name: str) -> str:
        """The toplevel's store path by evaluation alone (nothing is built)."""
        return self._nix("eval", "--raw", f"{self.installable(name)}.outPath")

    def drv_path(self, name: str) -> str:
        return self._nix("eval", "--raw", f"{self.installable(name)}.drvPath")

    def build(self, name: str) -> str:
        """Builds `name`'s toplevel into this machine's store; its path."""
        return self.build_all([name])[name]

    def build_all(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """Builds the toplevels of `names` (all machines by default) in one nix call."""
        names = list(self.machines if names is None else names)
        out = json.loads(self._nix("build", "--no-link", "--json", *(self.installable(n) for n in names)))
        return {n: o["outputs"]["out"] for n, o in zip(names, out, strict=True)}

    def _check_name(self, name: str) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"machine name {name!r}: a letter or '_', then letters, digits, '_', '-'")

    def _write(self) -> None:
        machines = {n: {**asdict(s), "system": nix_system()} for n, s in sorted(self.machines.items())}
        (self.directory / "machines.json").write_text(json.dumps(machines, indent=2, sort_keys=True) + "\n")

    def _nix(self, *args: str) -> str:
        done = subprocess.run(
            ["nix", *args], capture_output=True, text=True, env=nix_env(), check=False, stdin=subprocess.DEVNULL
        )
        if done.returncode != 0:
            raise CommandError(["nix", *args], done.returncode, done.stderr.encode())
        return done.stdout.strip()
