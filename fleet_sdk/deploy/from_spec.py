"""A machine's deploy settings as the stack declares them (`Machine.deploy`, fleet_sdk.spec.deploy)
mapped onto the engine's DeploySettings: the one place the two meet."""

from __future__ import annotations

import dataclasses
import math

from fleet_sdk.deploy.settings import DeploySettings
from fleet_sdk.spec.deploy import Deploy

# the watchdog fires this long after the deadlines of a switch and its confirmation (the defaults'
# margin: 900 s against 600 + 60)
WATCHDOG_MARGIN = 240


def deploy_settings(deploy: Deploy | None, base: DeploySettings | None = None) -> DeploySettings:
    """The engine's settings for a machine deployed with `deploy` (None: `base` as it is). Deadlines
    the spec does not set come from `base` (the defaults); the watchdog is moved later when a long
    `confirm_timeout` would otherwise let it undo a slow but good switch."""
    base = base or DeploySettings()
    if deploy is None:
        return base
    confirm = float(deploy.confirm_timeout)
    watchdog = max(base.watchdog_seconds, math.ceil(base.switch_timeout + confirm) + WATCHDOG_MARGIN)
    return dataclasses.replace(
        base,
        build_on=deploy.build_on,
        reboot=deploy.reboot,
        on_unit_failure=deploy.on_unit_failure,
        confirm_timeout=confirm,
        watchdog_seconds=watchdog,
        lock_seconds=max(base.lock_seconds, watchdog + 1),
        health_commands=deploy.health_checks.commands,
        health_units=deploy.health_checks.units,
    )
