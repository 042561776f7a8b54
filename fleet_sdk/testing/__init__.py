"""Offline graph testing for this repository and for consumer stacks.

from fleet_sdk.testing import recorded_graph
graph = recorded_graph(lambda: deploy_fleet(my_fleet, settings))
assert graph.one("hcloud:index/server:Server", "web1").options["protect"]
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

__all__ = [
    "COMPUTED",
    "SECRET",
    "FleetMocks",
    "RecordedGraph",
    "RecordedResource",
    "Recorder",
    "recorded_graph",
]
