"""Offline graph testing for this repository and for consumer stacks, and a recording Runner.

from fleet_sdk.testing import recorded_graph
graph = recorded_graph(lambda: deploy_fleet(my_fleet, settings))
assert graph.one("hcloud:index/server:Server", "web1").options["protect"]

RecordingRunner (fleet_sdk.testing.runner) stands in for the Runner the tool modules take.
FakeTarget (fleet_sdk.testing.targethost) is a machine to deploy to, over real ssh, and FakeFlake
(fleet_sdk.testing.fakesystem) builds fake NixOS and nix-darwin systems with the real nix.
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
from fleet_sdk.testing.fakesystem import FakeFlake, FakeSystem, nix_env
from fleet_sdk.testing.runner import Call, RecordingRunner, Reply
from fleet_sdk.testing.targethost import FakeTarget, FakeTargets, Generation

__all__ = [
    "COMPUTED",
    "SECRET",
    "Call",
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
    "nix_env",
    "recorded_graph",
]
