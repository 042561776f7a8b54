"""Pulumi components that materialise a fleet spec. Importing this imports Pulumi."""

from fleet_sdk.graph.fleet import (
    FleetComponent,
    MachineComponent,
    deploy_fleet,
    run_program,
    settings_from_pulumi_config,
)

__all__ = ["FleetComponent", "MachineComponent", "deploy_fleet", "run_program", "settings_from_pulumi_config"]
