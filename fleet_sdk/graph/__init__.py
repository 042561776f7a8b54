"""Pulumi components that materialise a fleet spec. Importing this imports Pulumi."""

from fleet_sdk.graph.fleet import (
    FleetArgs,
    FleetComponent,
    FleetOutputs,
    MachineArgs,
    MachineComponent,
    deploy_fleet,
    export_outputs,
    run_program,
    settings_from_pulumi_config,
)

__all__ = [
    "FleetArgs",
    "FleetComponent",
    "FleetOutputs",
    "MachineArgs",
    "MachineComponent",
    "deploy_fleet",
    "export_outputs",
    "run_program",
    "settings_from_pulumi_config",
]
