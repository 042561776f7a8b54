"""Reboot policy `if-needed`: reboot when the booted kernel, initrd or modules differ from the new
system's, or when a switch inhibitor left it as the boot default only; then wait, with a deadline,
until the machine is back and check that it booted the new system.

The reboot is proven by a marker file in /run written just before: /run is emptied at boot, so the
machine answering without the marker has rebooted, however fast it was down and up.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from fleet_sdk.deploy.commands import DeployCommands
from fleet_sdk.deploy.model import DeployResult
from fleet_sdk.deploy.remote import Remote
from fleet_sdk.deploy.settings import DeploySettings


def reboot(
    remote: Remote, commands: DeployCommands, settings: DeploySettings, result: DeployResult, say: Callable[[str], None]
) -> DeployResult:
    """`result` after rebooting into `commands.system`; a failure keeps reboot_required and says what happened."""
    machine = commands.machine
    say("rebooting: the booted kernel, initrd or modules differ from the new system's")
    started = remote.attempt(commands.reboot)
    if started is None or started.returncode != 0:
        return dataclasses.replace(
            result, status="failed", error=f"machine {machine}: the reboot could not be started; reboot it by hand"
        )
    deadline = time.monotonic() + settings.reboot_timeout
    while time.monotonic() < deadline:
        time.sleep(settings.poll_interval)
        back = remote.attempt(commands.after_reboot)
        if back is None or back.returncode != 0:
            continue  # down, or not yet rebooted (the marker is still there)
        booted = back.text.strip()
        if booted != commands.system:
            return dataclasses.replace(
                result,
                status="failed",
                current=booted,
                rebooted=True,
                error=f"machine {machine}: rebooted into {booted or 'no system'}, not {commands.system}; check its "
                "boot loader",
            )
        say("back after the reboot")
        return dataclasses.replace(result, current=booted, rebooted=True, reboot_required=False)
    return dataclasses.replace(
        result,
        status="failed",
        error=f"machine {machine}: not back within {settings.reboot_timeout:g} s of the reboot; check its console",
    )
