"""The programs a target has in /usr/local/bin, as data: the `reboot`, `systemctl`, `systemd-run`,
`sudo`, `nixos-install` and `nixos-facter` shims (bash scripts written into its folder at each
start), and the PATH that puts them first. Each records its argv to CALLS_LOG.
"""

from __future__ import annotations

from fleet_sdk.testing.targethost.installer import BOOT_INSTALLED, NIXOS_FACTER_SHIM, NIXOS_INSTALL_SHIM
from fleet_sdk.testing.targethost.records import CALLS_LOG, RECORD_AWK_VARIABLE, record_command

# Debian sshd's compiled-in PATH: the shims in /usr/local/bin come before /usr/bin
TARGET_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# `reboot` and `systemctl reboot`: record, then end PID 1, which takes every process of the target
# with it; the harness boots it again from the system profile (FakeTarget.reboot_delay later). An
# installer whose /mnt holds an installation boots that first (installer.BOOT_INSTALLED).
_REBOOT_SHIM = f"""#!/bin/bash
# Simulated reboot (fleet_sdk.testing.targethost): records its argv to {CALLS_LOG}.
{RECORD_AWK_VARIABLE}{record_command("program=reboot")}
if [ "$(id -u)" != 0 ]; then echo "Call to Reboot failed: Access denied" >&2; exit 1; fi
{BOOT_INSTALLED}boot_installed || exit 1
kill -TERM 1
sleep 30
"""

_SYSTEMCTL_SHIM = f"""#!/bin/bash
# Simulated systemctl (fleet_sdk.testing.targethost): `reboot` always; with /run/systemd/system,
# `reset-failed`, `is-active` and `is-system-running` over the systemd-run shim's units.
{RECORD_AWK_VARIABLE}{record_command("program=systemctl")}
verb=
for a in "$@"; do case $a in -*) ;; *) verb=$a; break;; esac; done
units=/run/systemd/transient
{BOOT_INSTALLED}if [ "$verb" = reboot ]; then
  if [ "$(id -u)" != 0 ]; then echo "Call to Reboot failed: Access denied" >&2; exit 1; fi
  boot_installed || exit 1
  kill -TERM 1
  sleep 30
fi
if [ ! -d /run/systemd/system ]; then
  echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2
  echo "Failed to connect to bus: Host is down" >&2
  exit 1
fi
unit() {{ case $1 in *.*) echo "$1";; *) echo "$1.service";; esac; }}
state() {{ [ -e "$units/$1" ] || {{ echo inactive; return; }}; read -r s pid _ < "$units/$1"
  if [ "$s" = active ] && ! kill -0 "$pid" 2>/dev/null; then s=failed; fi; echo "$s"; }}
args=(); for a in "$@"; do case $a in -*) ;; *) args+=("$a");; esac; done
case $verb in
  is-system-running) echo running ;;
  is-active) s=$(state "$(unit "${{args[1]}}")"); echo "$s"; [ "$s" = active ] ;;
  reset-failed)
    for u in "${{args[@]:1}}"; do u=$(unit "$u"); [ "$(state "$u")" = failed ] && rm -f "$units/$u"; done
    if [ ${{#args[@]}} = 1 ]; then for f in "$units"/*; do [ -e "$f" ] || continue
      [ "$(state "${{f##*/}}")" = failed ] && rm -f "$f"; done; fi
    exit 0 ;;
  *) echo "systemctl (fleet test shim): '$verb' is not simulated" >&2; exit 1 ;;
esac
"""

# systemd-run as NixOS deploy tools call it (reference/deploy.md §2 step 3, §4; nixpkgs#319440):
# each unit runs in its own session with a clean environment plus -E, so it outlives the ssh
# session; --pipe/--wait relay stdio and the exit code; a running or failed unit of the same name
# refuses a new one ("already loaded") until --collect or `systemctl reset-failed` clears it.
_SYSTEMD_RUN_SHIM = f"""#!/bin/bash
# Simulated systemd-run (fleet_sdk.testing.targethost): records its argv to {CALLS_LOG}.
{RECORD_AWK_VARIABLE}units=/run/systemd/transient
if [ "${{1:-}}" = --fleet-harness-unit ]; then
  unit=$2 collect=$3 cwd=$4; shift 4
  echo "active $$ $collect" > "$units/$unit"
  cd "$cwd" && "$@"
  rc=$?
  if [ $rc = 0 ] || [ "$collect" = 1 ]; then rm -f "$units/$unit"; else echo "failed $$ $collect" > "$units/$unit"; fi
  exit $rc
fi
argv=("$@")
record() {{ {record_command('program=systemd-run "$@"', argv='"${argv[@]}"')}; }}
if [ ! -d /run/systemd/system ]; then
  record result=no-systemd
  echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2
  echo "Failed to create bus connection: Host is down" >&2
  exit 1
fi
unit= pipe=0 wait=0 collect=0 quiet=0 cwd=/ envs=("PATH={TARGET_PATH}")
setenv() {{ case $1 in *=*) envs+=("$1");; *) [ -n "${{!1+x}}" ] && envs+=("$1=${{!1}}");; esac; }}
while [ $# -gt 0 ]; do
  case $1 in
    -P|--pipe) pipe=1 wait=1 ;;
    --wait) wait=1 ;;
    -G|--collect) collect=1 ;;
    -q|--quiet) quiet=1 ;;
    -d|--same-dir) cwd=$PWD ;;
    --no-ask-password|--no-block|-r|--remain-after-exit|--send-sighup) ;;
    -u|--unit) shift; unit=$1 ;;
    --unit=*) unit=${{1#--unit=}} ;;
    -E|--setenv) shift; setenv "$1" ;;
    --setenv=*) setenv "${{1#--setenv=}}" ;;
    -E?*) setenv "${{1#-E}}" ;;
    --working-directory=*) cwd=${{1#--working-directory=}} ;;
    -p|--property|--description|--slice|--service-type|--uid|--gid|--nice|--working-directory) shift ;;
    --property=*|--description=*|--slice=*|--service-type=*|--uid=*|--gid=*|--nice=*) ;;
    --) shift; break ;;
    -*) record result=unsupported-option; echo "systemd-run: unrecognized option '$1'" >&2; exit 1 ;;
    *) break ;;
  esac
  shift
done
if [ $# = 0 ]; then record result=no-command; echo "systemd-run: command line to execute required" >&2; exit 1; fi
[ -n "$unit" ] || unit=run-u$$
case $unit in *.*) ;; *) unit=$unit.service ;; esac
mkdir -p "$units"
exec 7>"$units/.lock"
flock 7
if [ -e "$units/$unit" ]; then
  read -r state pid was_collect < "$units/$unit"
  if [ "$state" = active ] && ! kill -0 "$pid" 2>/dev/null && [ "$was_collect" = 1 ]; then
    rm -f "$units/$unit"
  else
    record result=already-loaded "unit=$unit"
    echo "Failed to start transient service unit: Unit $unit was already loaded or has a fragment file." >&2
    exit 1
  fi
fi
record result=started "unit=$unit" "pipe:$([ $pipe = 1 ] && echo true || echo false)" \\
  "wait:$([ $wait = 1 ] && echo true || echo false)" "collect:$([ $collect = 1 ] && echo true || echo false)"
echo "active $$ $collect" > "$units/$unit"
run=(setsid env -i "${{envs[@]}}" "$0" --fleet-harness-unit "$unit" "$collect" "$cwd" "$@")
mkdir -p /var/log/fleet-harness/units
if [ $wait = 0 ]; then
  "${{run[@]}}" < /dev/null >> "/var/log/fleet-harness/units/$unit.log" 2>&1 7>&- &
  # the unit writes its own pid over ours before we return, so a dead pid never means "failed"
  for _ in $(seq 100); do read -r _ pid _ < "$units/$unit" 2>/dev/null; [ "$pid" != $$ ] && break; sleep 0.01; done
  exec 7>&-
  [ $quiet = 1 ] || echo "Running as unit: $unit" >&2
  exit 0
fi
exec 7>&-
[ $quiet = 1 ] || echo "Running as unit: $unit; invocation ID: 0" >&2
# <&0: bash gives a background job /dev/null as stdin otherwise
if [ $pipe = 1 ]; then "${{run[@]}}" <&0 &
else "${{run[@]}}" < /dev/null >> "/var/log/fleet-harness/units/$unit.log" 2>&1 & fi
wait $!
rc=$?
[ $quiet = 1 ] || echo "Finished with result: $([ $rc = 0 ] && echo success || echo exit-code)" >&2
exit $rc
"""

# Login users in this group have passwordless sudo (FakeTarget's `sudoers`); only they may execute
# SUDO_HELPER, a setuid-root copy of setpriv (mode 4750, this group's), which makes them root.
NOPASSWD_GROUP = "fleet-nopasswd"
SUDO_HELPER = "/usr/local/bin/.fleet-sudo-helper"

# sudo as a deploy calls it (reference/deploy.md §5): `sudo [-n] [-u root] [-E] [-H] [--] CMD…`.
# Root runs CMD itself; a member of NOPASSWD_GROUP runs it as root (NOPASSWD: ALL); anyone else
# would be asked for a password, which fails without a terminal: sudo's two messages, exit 1, and
# `-n` fails the same way with the second one only. The environment is reset (env_reset, Debian's
# secure_path), unless -E; sudo's SUDO_* variables are set.
_SUDO_SHIM = f"""#!/bin/bash
# Simulated sudo (fleet_sdk.testing.targethost): records its argv to {CALLS_LOG}.
{RECORD_AWK_VARIABLE}argv=("$@")
record() {{ {record_command('program=sudo "user=$(id -un)" "$@"', argv='"${argv[@]}"')}; }}
nonint=0 keep=0
while [ $# -gt 0 ]; do
  case $1 in
    -n|--non-interactive) nonint=1 ;;
    -E|--preserve-env) keep=1 ;;
    -H|--set-home) ;;
    -u|--user) shift; user=${{1:-}} ;;
    --user=*) user=${{1#--user=}} ;;
    --) shift; break ;;
    -*) record result=unsupported-option; echo "sudo (fleet test shim): option '$1' is not simulated" >&2; exit 1 ;;
    *) break ;;
  esac
  case ${{user:-root}} in root|'#0') ;; *)
    record result=unsupported-user; echo "sudo (fleet test shim): only -u root is simulated" >&2; exit 1 ;;
  esac
  shift
done
if [ $# = 0 ]; then record result=no-command; echo "usage: sudo [-n] [-E] [-u root] command" >&2; exit 1; fi
if [ "$(id -u)" != 0 ] && ! id -Gn | tr ' ' '\n' | grep -qx {NOPASSWD_GROUP}; then
  record result=password-required
  [ $nonint = 1 ] || echo "sudo: a terminal is required to read the password; either use the -S option \
to read from standard input or configure an askpass helper" >&2
  echo "sudo: a password is required" >&2
  exit 1
fi
if ! PATH={TARGET_PATH} command -v "$1" > /dev/null; then
  record result=command-not-found; echo "sudo: $1: command not found" >&2; exit 1
fi
record result=ran
envs=(SUDO_USER="$(id -un)" SUDO_UID="$(id -u)" SUDO_GID="$(id -g)" SUDO_COMMAND="$*")
if [ $keep = 0 ]; then
  envs=(-i PATH={TARGET_PATH} HOME=/root LOGNAME=root USER=root SHELL=/bin/sh ${{TERM:+TERM="$TERM"}} "${{envs[@]}}")
fi
if [ "$(id -u)" = 0 ]; then exec /usr/bin/env "${{envs[@]}}" "$@"; fi
exec {SUDO_HELPER} --reuid=0 --regid=0 --init-groups -- /usr/bin/env "${{envs[@]}}" "$@"
"""

SHIMS = {
    "reboot": _REBOOT_SHIM,
    "systemctl": _SYSTEMCTL_SHIM,
    "systemd-run": _SYSTEMD_RUN_SHIM,
    "sudo": _SUDO_SHIM,
    "nixos-install": NIXOS_INSTALL_SHIM,
    "nixos-facter": NIXOS_FACTER_SHIM,
}
