"""Clouds as plug-ins: one module per cloud, each registering one `CloudPlugin`.

A plug-in pairs a host model (a fleet_sdk.spec.Host subclass whose `kind` names the cloud) with the
component its machines share (deploy key, firewall, provider), which makes each machine's server.
The graph looks a machine's cloud up by its host's kind and never checks a concrete class. Hetzner
and GCP register from their modules here (imported by fleet_sdk.graph.fleet); another cloud does

    register(CloudPlugin(kind="mycloud", host=MyHost, component=MyCloud))

before `deploy_fleet` runs. Cloudflare DNS is no cloud of servers: it serves hosts whose
`dns_records` is true (fleet_sdk.graph.clouds.cloudflare).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pulumi

from fleet_sdk.errors import SpecError
from fleet_sdk.spec.hosts import Host, register_host_kind

if TYPE_CHECKING:
    from fleet_sdk.spec import Fleet, Machine


@dataclass(frozen=True)
class CloudArgs:
    """What a cloud's shared component is made from."""

    fleet: Fleet
    public_key: pulumi.Input[str]  # the fleet's deploy key, which every server lets in as root
    # the cloud's credential as a Pulumi secret, from the clan secret stack config names (an
    # explicit provider); None: the cloud's default provider and its own config
    credential: pulumi.Output[str] | None = None


@dataclass(frozen=True)
class Server:
    """A machine's server as its cloud made it, and the public addresses the graph uses."""

    resource: pulumi.CustomResource
    ipv4: pulumi.Output[str]
    ipv6: pulumi.Output[str] | None = None  # None: the cloud gives the server no public IPv6 address


class Cloud(Protocol):
    """A cloud's shared component, made once per fleet for the clouds its enabled machines use."""

    def server(self, fleet: Fleet, machine: Machine, opts: pulumi.ResourceOptions) -> Server:
        """The machine's server and whatever only it needs, made with `opts` (the machine
        component's child options: parent=the machine) merged with the plug-in's own.
        `machine.host` is an instance of the plug-in's host model."""
        ...


@dataclass(frozen=True)
class CloudPlugin:
    """One cloud: the host model machines declare, and the factory of its shared component,
    called as `component(name, args, opts)` (a ComponentResource class fits)."""

    kind: str
    host: type[Host]
    component: Callable[[str, CloudArgs, pulumi.ResourceOptions], Cloud]


# kind -> plug-in, in registration order (the order the shared components are made in)
_PLUGINS: dict[str, CloudPlugin] = {}


def register(plugin: CloudPlugin) -> CloudPlugin:
    """Make the graph provision hosts of `plugin.kind`, and the spec read such hosts given as dicts."""
    declared = plugin.host.model_fields["kind"].default
    if declared != plugin.kind:
        raise ValueError(
            f"cloud plug-in {plugin.kind!r}: its host model {plugin.host.__name__} has kind {declared!r}; "
            f"give it `kind: Literal[{plugin.kind!r}] = {plugin.kind!r}`"
        )
    register_host_kind(plugin.host)
    _PLUGINS[plugin.kind] = plugin
    return plugin


def unregister(kind: str) -> None:
    """Forget the plug-in of `kind` (tests that register a cloud of their own)."""
    _PLUGINS.pop(kind, None)


def plugins() -> list[CloudPlugin]:
    return list(_PLUGINS.values())


def plugin_for(host: Host) -> CloudPlugin | None:
    """The plug-in provisioning `host`: registered for its kind, with `host` of its model."""
    plugin = _PLUGINS.get(host.kind)
    return plugin if plugin is not None and isinstance(host, plugin.host) else None


def check_plugins(fleet: Fleet) -> None:
    """Refuse, before anything is registered, a machine with cloud resources no plug-in provisions."""
    problems = []
    for m in fleet.machines:
        if not m.cloud or m.host is None or plugin_for(m.host) is not None:
            continue
        plugin = _PLUGINS.get(m.host.kind)
        if plugin is None:
            problems.append(
                f"machine {m.name!r}: host: no cloud plug-in provisions hosts of kind {m.host.kind!r} "
                f"(registered: {', '.join(sorted(_PLUGINS)) or 'none'}); register its plug-in with "
                "fleet_sdk.graph.clouds.register before deploying, or disable the machine"
            )
        else:
            problems.append(
                f"machine {m.name!r}: host: a {type(m.host).__name__} of kind {m.host.kind!r}, but the "
                f"{m.host.kind!r} plug-in provisions {plugin.host.__name__} hosts; declare the host as one"
            )
    if problems:
        raise SpecError(problems)
