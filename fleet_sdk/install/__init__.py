"""The install engine: NixOS on a fresh server with nixos-anywhere, phase by phase and resumable,
adopting a server that already runs the machine and never wiping an installed one unless it says
`reinstall=True` (reference/deploy.md §1, §8).

from fleet_sdk.install import InstallRequest, install_machine
result = install_machine(request)  # adopted | installed | partial | failed
print(result.to_json())

Modules: model (request, facts, result, settings), target (ssh to the server: deadlines, facts, the
host key it presents), extrafiles (the private RAM folder nixos-anywhere copies from), checkpoint
(the phases done, for resuming), records (what the install writes into the fleet repository),
engine (one machine), sources (a request from the fleet repository and its vars, for the CLI).
"""

from fleet_sdk.install.engine import install_machine
from fleet_sdk.install.model import InstallRequest, InstallResult, InstallSettings, TargetFacts

__all__ = ["InstallRequest", "InstallResult", "InstallSettings", "TargetFacts", "install_machine"]
