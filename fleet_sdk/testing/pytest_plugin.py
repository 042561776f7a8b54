"""pytest plugin (entry point `fleet_sdk`): the `fleet_graph` fixture.

Mocks are global in Pulumi, so they are installed inside each call rather than at import time
(reference/pulumi.md §3.4); the fixture hands tests the function that does it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fleet_sdk.graph.offline import RecordedGraph, recorded_graph


@pytest.fixture
def fleet_graph() -> Callable[..., RecordedGraph]:
    """`fleet_graph(program, preview=True, config={...})` -> the recorded graph of one run."""

    def run(program: Callable[[], Any], **kwargs: Any) -> RecordedGraph:
        return recorded_graph(program, **kwargs)

    return run
