"""A deploy as data: every command the engine may run on the target, computed from the request, the
settings and the preflight's facts by pure functions (DESIGN §1, plan then act). The executor
(fleet_sdk.deploy.engine) only picks which of them to run; tests pin their exact argv.

NixOS (reference/deploy.md §8): the new system runs by `switch-to-configuration test`, which leaves
the profile and the boot entry alone; only after it is confirmed over a new connection do
`nix-env --set` and `switch-to-configuration boot` make it the one a reboot starts. So a crash or a
lost machine inside the window boots the previous system, and the watchdog restores the previous
system with `test` too. nix-darwin has no test/boot split (§5): `activate` runs the new system and
the profile follows after confirmation; at boot launchd activates the profile, the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet_sdk.deploy import scripts
from fleet_sdk.deploy.model import DeployRequest, Facts, MachineClass
from fleet_sdk.deploy.secrets import digest
from fleet_sdk.deploy.settings import DeploySettings

Argv = tuple[str, ...]
BOOT_PARTS = ("kernel", "initrd", "kernel-modules")


def sh(script: str, *args: str) -> Argv:
    """`sh -c SCRIPT sh ARGS…`: the script is constant text, the values are its positional arguments."""
    return ("sh", "-c", script, "sh", *args)


def activate_argv(machine_class: MachineClass, system: str) -> Argv:
    """What makes `system` the running one without touching the profile or the boot entry."""
    if machine_class == "darwin":
        return ("env", "HOME=/var/root", f"{system}/activate")  # deploy.md §5: as deploy-rs runs it
    return (f"{system}/bin/switch-to-configuration", "test")


def launch(launcher: str, unit: str, directory: str, argv: Argv, needs: str = "-") -> Argv:
    """Start `argv` detached from the ssh session, recording its group, output and exit code in `directory`
    (scripts.WRAPPER). Under systemd it is a transient unit, which outlives sshd restarts and the
    session's cgroup; elsewhere a new session (setsid) or at least immune to SIGHUP (nohup, macOS).
    Not `--wait`/`--pipe`: those tie the switch to this connection (deploy.md §7.2); the engine polls."""
    wrapped = ("/bin/sh", "-c", scripts.WRAPPER, "sh", directory, needs, *argv)
    if launcher == "systemd":
        return (
            "systemd-run",
            f"--unit={unit}",
            "--collect",
            "--no-ask-password",
            "--quiet",
            "--service-type=exec",
            "-E",
            "LOCALE_ARCHIVE",
            "--",
            *wrapped,
        )
    return sh(scripts.BACKGROUND, "setsid" if launcher == "setsid" else "nohup", *wrapped)


@dataclass(frozen=True)
class DeployCommands:
    machine: str
    system: str
    previous: str
    token: str
    unchanged: bool  # the fast path: nothing to upload, copy or activate
    upload: Argv | None  # the secrets archive goes on its stdin
    digest: str
    build: Argv | None  # realise the derivation on the target (build_on="remote")
    check: Argv
    arm: Argv
    switch: Argv
    switch_dir: str
    rollback: Argv | None  # None when there is no previous system to go back to
    rollback_dir: str
    disarm: Argv
    confirm: Argv
    health: tuple[tuple[str, Argv], ...]  # (what is checked, argv)
    commit: Argv
    kill: Argv
    state: Argv
    release: Argv
    reboot: Argv
    after_reboot: Argv

    def poll(self, directory: str) -> Argv:
        return sh(scripts.POLL, directory)


def preflight_argv(settings: DeploySettings, token: str, who: str) -> Argv:
    return sh(scripts.PREFLIGHT, settings.state_dir, token, str(settings.lock_seconds), who, settings.secrets_root)


def release_argv(settings: DeploySettings, token: str) -> Argv:
    return sh(scripts.RELEASE, settings.state_dir, token)


def deploy_commands(request: DeployRequest, settings: DeploySettings, facts: Facts, token: str) -> DeployCommands:
    """Every command of one deploy; `token` names this run's folder and units on the target."""
    system, kind = request.system, request.machine_class
    run = f"{settings.state_dir}/{token}"
    secrets_digest = digest(request.secrets) if request.secrets else ""
    upload_needed = bool(request.secrets) and facts.digest != secrets_digest
    unchanged = facts.current == system and facts.profile == system and not upload_needed
    previous = facts.current
    unit = f"fleet-switch-{request.machine}-{token}"
    watchdog = launch_watchdog(facts.launcher, f"fleet-watchdog-{request.machine}-{token}")
    restore = activate_argv(kind, previous) if previous else ("true",)
    return DeployCommands(
        machine=request.machine,
        system=system,
        previous=previous,
        token=token,
        unchanged=unchanged,
        upload=sh(scripts.UPLOAD, settings.secrets_root) if upload_needed else None,
        digest=secrets_digest,
        build=("nix-store", "--realise", request.drv_path)
        if settings.build_on == "remote" and request.drv_path
        else None,
        check=sh(scripts.CHECK_DARWIN if kind == "darwin" else scripts.CHECK_NIXOS, system),
        arm=sh(
            scripts.ARM,
            run,
            *watchdog,
            "/bin/sh",
            "-c",
            scripts.WATCHDOG,
            "sh",
            run,
            str(settings.watchdog_seconds),
            settings.state_dir,
            token,
            *restore,
        ),
        switch=launch(facts.launcher, unit, f"{run}/switch", activate_argv(kind, system), f"{run}/canary"),
        switch_dir=f"{run}/switch",
        rollback=launch(facts.launcher, f"{unit}-rollback", f"{run}/rollback", restore) if previous else None,
        rollback_dir=f"{run}/rollback",
        disarm=("rm", f"{run}/canary"),
        confirm=sh(scripts.CURRENT),
        health=health_checks(settings, kind),
        commit=sh(scripts.COMMIT_DARWIN if kind == "darwin" else scripts.COMMIT_NIXOS, system),
        kill=sh(scripts.KILL, f"{run}/switch"),
        state=sh(scripts.STATE, run),
        release=release_argv(settings, token),
        reboot=sh(scripts.REBOOT, f"{settings.state_dir}/reboot-{token}"),
        after_reboot=sh(scripts.AFTER_REBOOT, f"{settings.state_dir}/reboot-{token}"),
    )


def launch_watchdog(launcher: str, unit: str) -> Argv:
    """The prefix that detaches the watchdog: a transient unit under systemd (a setsid'd process
    stays in the ssh session's cgroup, which logind may stop), else setsid or nohup."""
    if launcher == "systemd":
        return ("systemd-run", f"--unit={unit}", "--collect", "--no-ask-password", "--quiet", "--")
    return ("setsid",) if launcher == "setsid" else ("nohup",)


def health_checks(settings: DeploySettings, kind: MachineClass) -> tuple[tuple[str, Argv], ...]:
    checks = [(f"command `{c}`", sh(c)) for c in settings.health_commands]
    if kind == "nixos":  # launchd has no `is-active`
        checks += [(f"unit {u}", ("systemctl", "is-active", "--quiet", u)) for u in settings.health_units]
    return tuple(checks)


def needs_reboot(facts: Facts, system_parts: dict[str, str]) -> bool:
    """Whether the booted kernel, initrd or modules differ from the new system's (nixpkgs'
    auto-upgrade allowReboot rule); unknown (no /run/booted-system) counts as no."""
    if not facts.booted:
        return False
    return any(facts.booted.get(p, "") != system_parts.get(p, "") for p in BOOT_PARTS)
