"""A cloud that exists only in tests: one module and one registration make a cloud (PLUGIN).

Its host model checks its own fields; its shared component registers the fleet's deploy key; its
servers are `fakecloud:index:Server` custom resources whose addresses the cloud computes (FakeMocks).
Nothing here is registered on import: a test registers PLUGIN (and unregisters it after).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pulumi
from typing_extensions import override

from fleet_sdk.graph.clouds import CloudArgs, CloudPlugin, Server
from fleet_sdk.spec import Fleet, Host, Machine
from fleet_sdk.testing import FleetMocks

SIZES = ("small", "large")
SERVER = "fakecloud:index:Server"
KEY = "fakecloud:index:SshKey"


class FakeHost(Host):
    """A server of the fake cloud: a size and a region."""

    kind: Literal["fakecloud"] = "fakecloud"
    size: str = "small"
    region: str = "moon-1"

    @property
    @override
    def summary(self) -> str:
        return f"fakecloud {self.size} {self.region}"

    @override
    def problems(self, machine: str) -> list[str]:
        problems = super().problems(machine)  # labels and open_ports, as every host
        if self.size not in SIZES:
            problems.append(f"host.size: {self.size!r} is not a fakecloud size; choose one of {', '.join(SIZES)}")
        return problems


class FakeServer(pulumi.CustomResource):
    """A server; ipv4 and ipv6 are computed by the cloud."""

    def __init__(self, name: str, size: str, region: str, opts: pulumi.ResourceOptions) -> None:
        props = {"size": size, "region": region, "ipv4": None, "ipv6": None}
        super().__init__(SERVER, name, props, opts)


class FakeKey(pulumi.CustomResource):
    def __init__(self, name: str, public_key: pulumi.Input[str], opts: pulumi.ResourceOptions) -> None:
        super().__init__(KEY, name, {"public_key": public_key}, opts)


class FakeCloud(pulumi.ComponentResource):
    """What the fake cloud's servers share: the fleet's deploy key."""

    def __init__(self, name: str, args: CloudArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fakecloud:index:Cloud", name, None, opts)
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        self.key = FakeKey(f"{name}-deploy", args.public_key, child)
        self.register_outputs({"key": self.key.id})

    def server(self, fleet: Fleet, machine: Machine, opts: pulumi.ResourceOptions) -> Server:
        host = machine.host
        assert isinstance(host, FakeHost)
        server = FakeServer(
            machine.name,
            host.size,
            host.region,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=host.protect, depends_on=[self.key])),
        )
        ipv4: Any = server.ipv4  # type: ignore[attr-defined]  # an output property, set by the engine
        ipv6: Any = server.ipv6  # type: ignore[attr-defined]
        return Server(server, ipv4=ipv4, ipv6=ipv6)


PLUGIN = CloudPlugin(kind="fakecloud", host=FakeHost, component=FakeCloud)


class FakeMocks(FleetMocks):
    """FleetMocks that also know what the fake cloud computes for a server."""

    @override
    def computed_outputs(
        self, type_: str, n: int, state: dict[str, Any], value: Callable[[Any], Any]
    ) -> dict[str, Any]:
        if type_ == SERVER:
            return {"ipv4": value(f"203.0.113.{n % 254 + 1}"), "ipv6": value(f"2001:db8:fa:{n:x}::1")}
        return super().computed_outputs(type_, n, state, value)
