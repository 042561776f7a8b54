"""The deploy engine: put a built system closure on a machine and make it run, with automatic
rollback (reference/deploy.md §8).

from fleet_sdk.deploy import DeployRequest, DeploySettings, deploy_machine
result = deploy_machine(DeployRequest("web1", "root@web1.zt", "/nix/store/…-nixos-system-web1", host_key=key))
print(result.to_json())

Modules: settings (DeploySettings), model (request, facts, result), secrets (the upload archive),
scripts (the sh run on the target), commands (every command, as data), remote (ssh), engine (one
machine), activation (watchdog, switch, confirm, rollback), reboot, fleet (many machines at once),
sources (system closures and host keys from the fleet repository, for the CLI), probe (the closure
probe: every machine's toplevel from one `nix eval`, cached by the flake's source fingerprint, which
flakesource takes).
"""

from fleet_sdk.deploy.commands import DeployCommands, deploy_commands
from fleet_sdk.deploy.engine import deploy_machine
from fleet_sdk.deploy.fleet import deploy_machines
from fleet_sdk.deploy.model import DeployRequest, DeployResult, Facts, SecretFile
from fleet_sdk.deploy.settings import DeploySettings

__all__ = [
    "DeployCommands",
    "DeployRequest",
    "DeployResult",
    "DeploySettings",
    "Facts",
    "SecretFile",
    "deploy_commands",
    "deploy_machine",
    "deploy_machines",
]
