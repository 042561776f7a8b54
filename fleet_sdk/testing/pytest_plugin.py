"""pytest plugin (entry point `fleet_sdk`): the `fleet_graph` and `target_hosts` fixtures.

Mocks are global in Pulumi, so they are installed inside each call rather than at import time
(reference/pulumi.md §3.4); the fixture hands tests the function that does it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fleet_sdk.graph.offline import RecordedGraph, recorded_graph
from fleet_sdk.testing.targethost import FakeTargets


@pytest.fixture
def fleet_graph() -> Callable[..., RecordedGraph]:
    """`fleet_graph(program, preview=True, config={...})` -> the recorded graph of one run."""

    def run(program: Callable[[], Any], **kwargs: Any) -> RecordedGraph:
        return recorded_graph(program, **kwargs)

    return run


@pytest.fixture
def target_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeTargets]:
    """Target hosts to deploy to: `target_hosts(2)` or `target_hosts.new("web1", os_kind="debian")` start
    them (fleet_sdk.testing.targethost); all are stopped when the test ends, failed or not."""
    hosts = FakeTargets(tmp_path_factory.mktemp("targets"))
    try:
        yield hosts
    finally:
        hosts.stop_all()
