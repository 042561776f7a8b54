"""The shell the engine runs on a target: constant POSIX sh scripts, called as `sh -c SCRIPT sh ARG…`,
so every value (store path, folder, token) is a positional argument and never spliced into code.

They run under dash (NixOS's and Debian's /bin/sh is bash or dash) and macOS's /bin/sh, so they use
nothing but POSIX sh, coreutils found on both (readlink -f, mkdir, mv, tail -c) and tar.

Layout of the state folder (DeploySettings.state_dir, in /run so a reboot empties it):
    lock/owner            "<token> <expiry epoch> <who>": one deploy at a time per machine
    <token>/canary        exists while the watchdog is armed; the engine removes it to disarm
    <token>/fired         the canary, renamed by the watchdog when it fires (so `rm canary` fails)
    <token>/switch/{pgid,out,rc}, <token>/rollback/…   a detached command's group, output, exit code
"""

from __future__ import annotations

# macOS's non-login ssh shell and sudo's secure_path lack Nix's folders; on NixOS this adds nothing new
PRELUDE = 'PATH="$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin"; export PATH\n'
# where a link leads, nothing when it leads nowhere (GNU `readlink -f` prints a missing last part)
RESOLVE = 'resolve() { [ -e "$1" ] && readlink -f "$1"; }\n'

# $1 state dir, $2 token, $3 lock lifetime (s), $4 who (no spaces), $5 secrets root. Takes the deploy
# lock (mkdir is atomic everywhere, flock(1) is missing on macOS), refuses while a switch-to-configuration
# holds its own lock, then prints the facts as key=value lines. Exit 75 = busy.
PREFLIGHT = (
    PRELUDE
    + RESOLVE
    + """set -u
state=$1 token=$2 ttl=$3 who=$4 secrets=$5
lock=$state/lock now=$(date +%s)
mkdir -p "$state" && chmod 700 "$state" || exit 70
if ! mkdir "$lock" 2>/dev/null; then
  holder=$(cat "$lock/owner" 2>/dev/null) || holder=
  expires=${holder#* }; expires=${expires%% *}
  case $expires in ''|*[!0-9]*) expires=$((now + 1));; esac
  if [ "$expires" -gt "$now" ]; then echo "busy=$holder"; exit 75; fi
  rm -rf "$lock"; mkdir "$lock" 2>/dev/null || { echo "busy=$holder"; exit 75; }
fi
echo "$token $((now + ttl)) $who" > "$lock/owner"
stc=/run/nixos/switch-to-configuration.lock
if [ -e "$stc" ] && command -v flock >/dev/null && ! flock -n "$stc" true; then
  rm -rf "$lock"; echo "busy=switch-to-configuration"; exit 75
fi
echo "current=$(resolve /run/current-system)"
echo "profile=$(resolve /nix/var/nix/profiles/system)"
echo "profile_link=$(readlink /nix/var/nix/profiles/system 2>/dev/null)"
for part in kernel initrd kernel-modules; do
  echo "booted_$part=$(resolve "/run/booted-system/$part")"
done
echo "digest=$(cat "$secrets/.fleet-digest" 2>/dev/null)"
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null; then echo launcher=systemd
elif command -v setsid >/dev/null; then echo launcher=setsid
else echo launcher=nohup; fi
"""
)

# $1 state dir, $2 token. Frees the lock unless the watchdog is still armed: it then frees the lock
# itself once it fired, so no deploy starts while it may still restore the previous system.
RELEASE = """state=$1 run=$1/$2
[ -e "$run/canary" ] && exit 0
read -r t rest 2>/dev/null < "$state/lock/owner" && [ "$t" = "$2" ] && rm -rf "$state/lock"
rm -rf "$run"
exit 0
"""

# $1 secrets root; the tar archive on stdin. It is extracted beside the root and renamed over it, so
# sops-nix sees the old set or the new one. Owners, groups and modes come from the archive (root
# extracts them as they are), so no file is ever readable by anyone else, not even for a moment.
UPLOAD = (
    PRELUDE
    + """set -eu
root=$1 new=$1.fleet-new old=$1.fleet-old
umask 077
if [ ! -e "$root" ] && [ -e "$old" ]; then mv "$old" "$root"; fi
rm -rf "$new" "$old"
mkdir -p "${root%/*}" "$new"
tar -x -p -f - -C "$new"
if [ -e "$root" ]; then mv "$root" "$old"; fi
mv "$new" "$root"
rm -rf "$old"
"""
)

# $1 store path. Exit 3 when it is not a NixOS system; else its boot parts, to tell whether it needs a reboot.
CHECK_NIXOS = (
    RESOLVE
    + """test -f "$1/nixos-version" && test -x "$1/bin/switch-to-configuration" || exit 3
for part in kernel initrd kernel-modules; do echo "$part=$(resolve "$1/$part")"; done
"""
)
CHECK_DARWIN = 'test -f "$1/darwin-version" && test -x "$1/activate" || exit 3\n'

# $1 run dir; then the launcher and the watchdog's argv. Arms the canary, then starts the watchdog
# detached from this ssh session (its output closed, so ssh returns at once).
ARM = """mkdir -p "$1" && touch "$1/canary" || exit 1
shift
"$@" </dev/null >/dev/null 2>&1 &
"""

# $1 run dir, $2 seconds, $3 state dir, $4 token; then the argv restoring the previous system. Unless
# the canary goes first, after $2 s it stops the switch in flight and restores; then it frees the lock.
# Only the running system changes: the profile and boot entry are still the previous ones.
WATCHDOG = (
    PRELUDE
    + """run=$1 secs=$2 state=$3 token=$4
shift 4
n=0
while [ -e "$run/canary" ] && [ "$n" -lt "$secs" ]; do sleep 1; n=$((n + 1)); done
mv "$run/canary" "$run/fired" 2>/dev/null || exit 0
group=$(cat "$run/switch/pgid" 2>/dev/null) && kill -s TERM -- "-$group" 2>/dev/null && sleep 1
"$@" > "$run/restore.out" 2>&1
echo $? > "$run/restored"
read -r t rest 2>/dev/null < "$state/lock/owner" && [ "$t" = "$token" ] && rm -rf "$state/lock"
"""
)

# $1 dir, $2 a file that must still exist for the command to start ("-": none), then the argv.
# The switch needs the canary: a launch delayed past the watchdog must not undo its restore.
# Records its process group (its own under systemd and setsid; the launching session's under
# nohup), output and exit code, the code last and atomically: the engine polls for it. The group
# file goes when the command ends, so a later kill never hits a reused id.
WRAPPER = (
    PRELUDE
    + """dir=$1 needs=$2
shift 2
mkdir -p "$dir" || exit
if [ "$needs" != - ] && [ ! -e "$needs" ]; then
  echo "not started: $needs is gone (the watchdog fired)" > "$dir/out"; echo 125 > "$dir/rc"; exit 125
fi
group=$(ps -o pgid= -p $$ 2>/dev/null | tr -d ' ')
echo "${group:-$$}" > "$dir/pgid"
trap : TERM  # a KILL of the group ends the command; this shell lives on to record its code
"$@" > "$dir/out" 2>&1
rc=$?
rm -f "$dir/pgid"
echo "$rc" > "$dir/rc.tmp" && mv "$dir/rc.tmp" "$dir/rc"
"""
)

# the launcher and argv follow: started in the background with stdio closed, so ssh returns
BACKGROUND = '"$@" </dev/null >/dev/null 2>&1 &\n'

# $1 dir of a WRAPPER run: `rc=N` and the output's tail when it ended, else `running`
POLL = """if [ -e "$1/rc" ]; then echo "rc=$(cat "$1/rc")"; tail -c 65536 "$1/out" 2>/dev/null
else echo running; fi
"""

# $1 dir of a WRAPPER run: stop it with all it started (its group)
KILL = 'group=$(cat "$1/pgid" 2>/dev/null) && kill -s TERM -- "-$group" 2>/dev/null; exit 0\n'

# $1 run dir: what happened while the engine could not reach the target
STATE = (
    RESOLVE
    + """echo "current=$(resolve /run/current-system)"
[ -e "$1/canary" ] && echo armed=1
[ -e "$1/fired" ] && echo fired=1
[ -e "$1/restored" ] && echo "restored=$(cat "$1/restored")"
exit 0
"""
)

# $1 store path: the boot entry and profile change only now, after the new system was confirmed
COMMIT_NIXOS = (
    PRELUDE
    + """nix-env -p /nix/var/nix/profiles/system --set "$1" || exit
"$1/bin/switch-to-configuration" boot || exit
echo "profile_link=$(readlink /nix/var/nix/profiles/system)"
"""
)
COMMIT_DARWIN = (
    PRELUDE
    + """nix-env -p /nix/var/nix/profiles/system --set "$1" || exit
echo "profile_link=$(readlink /nix/var/nix/profiles/system)"
"""
)

# $1 marker in /run: its absence after the machine is back proves it rebooted (/run is emptied)
REBOOT = """touch "$1" || exit
nohup sh -c 'sleep 1; reboot' </dev/null >/dev/null 2>&1 &
"""
AFTER_REBOOT = RESOLVE + '[ ! -e "$1" ] && resolve /run/booted-system\n'
# the running system, over a new connection: the confirmation
CURRENT = RESOLVE + "resolve /run/current-system\n"
