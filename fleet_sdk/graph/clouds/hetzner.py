"""Hetzner Cloud resources: the fleet's deploy key and firewall, and one server per machine (with a
firewall of its own when it opens more ports). Registered as the `hetzner` cloud plug-in; pulumi_hcloud
is imported only when the fleet has an enabled Hetzner machine."""

from __future__ import annotations

from typing import Any

import pulumi

from fleet_sdk.graph.clouds import CloudArgs, CloudPlugin, Server, register
from fleet_sdk.spec import Fleet, HetznerHost, Machine
from fleet_sdk.spec.hosts import port_ranges

# ZeroTier's port besides SSH; ICMP so the servers answer ping and path-MTU discovery works.
_ANYWHERE = ["0.0.0.0/0", "::/0"]
FIREWALL_RULES = [
    {"direction": "in", "protocol": "tcp", "port": "22", "source_ips": _ANYWHERE, "description": "ssh"},
    {
        "direction": "in",
        "protocol": "udp",
        "port": "9993",
        "source_ips": _ANYWHERE,
        "description": "zerotier",
    },
    {"direction": "in", "protocol": "icmp", "source_ips": _ANYWHERE, "description": "icmp"},
]


# What an adopted server (HetznerHost.server_id) keeps as it is while it is adopted: a server made by
# other tools differs in these from what the stack declares, and an import whose inputs differ from
# the live server fails. The image is only the bootstrap OS (changing it would replace the server).
# Once imported, remove server_id and the next `pulumi up` updates the others in place.
ADOPTED_IGNORED = ["image", "labels", "firewall_ids", "delete_protection", "rebuild_protection"]


def open_port_rules(open_ports: tuple[str, ...]) -> list[dict[str, Any]]:
    """Inbound rules from anywhere for a host's open_ports ("tcp/443", "udp/60000-61000")."""
    return [
        {"direction": "in", "protocol": protocol, "port": port, "source_ips": _ANYWHERE, "description": entry}
        for protocol, port, entry in port_ranges(open_ports)
    ]


class HetznerCloud(pulumi.ComponentResource):
    """What every Hetzner server of the fleet shares (`fleet:hetzner:Cloud`, composite): the deploy
    key, the firewall and, with a token from a clan secret, the provider."""

    def __init__(self, name: str, args: CloudArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleet:hetzner:Cloud", name, None, opts)
        import pulumi_hcloud as hcloud

        self._hcloud = hcloud
        fleet = args.fleet
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        # an explicit provider when the token comes from a clan secret; else the default (hcloud:token)
        self.provider = (
            hcloud.Provider(name, token=args.credential, opts=child) if args.credential is not None else None
        )
        shared = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(provider=self.provider))
        labels = {"fleet": fleet.name}
        # Hetzner refuses a second key with the same fingerprint, so the fleet registers it once.
        self.ssh_key = hcloud.SshKey(
            f"{name}-deploy",
            name=f"{fleet.name}-deploy",
            public_key=args.public_key,
            labels=labels,
            opts=shared,
        )
        self.firewall = hcloud.Firewall(name, name=fleet.name, rules=FIREWALL_RULES, labels=labels, opts=shared)
        # hcloud wants integer ids; one conversion shared by every server
        self.firewall_ids = [self.firewall.id.apply(int)]
        self.register_outputs({"ssh_key_id": self.ssh_key.id, "firewall_id": self.firewall.id})

    def server(self, fleet: Fleet, machine: Machine, opts: pulumi.ResourceOptions) -> Server:
        host = machine.host
        assert isinstance(host, HetznerHost)  # the plug-in serves its own host model only
        hcloud = self._hcloud
        labels = {**host.labels, "fleet": fleet.name, "machine": machine.name}
        firewall_ids = self.firewall_ids
        if host.open_ports:
            # the machine's own firewall, beside the shared one: other servers keep their ports closed
            own = hcloud.Firewall(
                f"{machine.name}-ports",
                name=f"{fleet.name}-{machine.name}-ports",
                rules=open_port_rules(host.open_ports),
                labels=labels,
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(provider=self.provider)),
            )
            firewall_ids = [*firewall_ids, own.id.apply(int)]
        server = hcloud.Server(
            machine.name,
            name=machine.name,
            server_type=host.server_type,
            location=host.location,
            image=host.image,  # only the bootstrap OS: nixos-anywhere replaces it
            ssh_keys=[self.ssh_key.id],
            firewall_ids=firewall_ids,
            public_nets=[{"ipv4_enabled": True, "ipv6_enabled": True}],
            labels=labels,
            delete_protection=host.protect,
            rebuild_protection=host.protect,
            opts=pulumi.ResourceOptions.merge(
                opts,
                pulumi.ResourceOptions(
                    provider=self.provider,
                    protect=host.protect,
                    # changing either would replace (wipe) an installed server
                    ignore_changes=["ssh_keys", "user_data", *(ADOPTED_IGNORED if host.import_id is not None else [])],
                    import_=host.import_id,
                ),
            ),
        )
        return Server(server, ipv4=server.ipv4_address, ipv6=server.ipv6_address)


PLUGIN = register(CloudPlugin(kind="hetzner", host=HetznerHost, component=HetznerCloud))
