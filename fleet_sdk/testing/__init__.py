"""Offline graph testing for this repository and for consumer stacks, and a recording Runner.

from fleet_sdk.testing import recorded_graph
graph = recorded_graph(lambda: deploy_fleet(my_fleet, settings))
assert graph.one("hcloud:index/server:Server", "web1").options["protect"]

RecordingRunner (fleet_sdk.testing.runner) stands in for the Runner the tool modules take.
FakeTarget (fleet_sdk.testing.targethost) is a machine to deploy to, over real ssh, and FakeFlake
(fleet_sdk.testing.fakesystem) builds fake NixOS and nix-darwin systems with the real nix.
apply_program (fleet_sdk.testing.apply) applies a program as `pulumi up` would, running its commands.
"""

from fleet_sdk.graph.offline import (
    COMPUTED,
    SECRET,
    FleetMocks,
    RecordedGraph,
    RecordedResource,
    Recorder,
    recorded_graph,
)
from fleet_sdk.testing.apply import ApplyResult, ApplyState, apply_program
from fleet_sdk.testing.fakesystem import FakeFlake, FakeSystem, nix_env
from fleet_sdk.testing.localcommand import CommandRun
from fleet_sdk.testing.runner import Call, RecordingRunner, Reply
from fleet_sdk.testing.targethost import FakeTarget, FakeTargets, Generation

__all__ = [
    "COMPUTED",
    "SECRET",
    "ApplyResult",
    "ApplyState",
    "Call",
    "CommandRun",
    "FakeFlake",
    "FakeSystem",
    "FakeTarget",
    "FakeTargets",
    "FleetMocks",
    "Generation",
    "RecordedGraph",
    "RecordedResource",
    "Recorder",
    "RecordingRunner",
    "Reply",
    "apply_program",
    "nix_env",
    "recorded_graph",
]
