"""Hetzner Cloud resources: the fleet's deploy key and firewall, and one server per machine (with a
firewall of its own when it opens more ports)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_hcloud as hcloud

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


def open_port_rules(open_ports: tuple[str, ...]) -> list[dict[str, Any]]:
    """Inbound rules from anywhere for a host's open_ports ("tcp/443", "udp/60000-61000")."""
    return [
        {"direction": "in", "protocol": protocol, "port": port, "source_ips": _ANYWHERE, "description": entry}
        for protocol, port, entry in port_ranges(open_ports)
    ]


class HetznerCloud(pulumi.ComponentResource):
    """What every Hetzner server of the fleet shares: the deploy key and the firewall."""

    def __init__(
        self,
        fleet: Fleet,
        public_key: pulumi.Input[str],
        token: pulumi.Output[str] | None,
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("fleet:hetzner:Cloud", fleet.name, None, opts)
        # an explicit provider when the token comes from a clan secret; else the default (hcloud:token)
        self.provider = (
            hcloud.Provider(fleet.name, token=token, opts=pulumi.ResourceOptions(parent=self))
            if token is not None
            else None
        )
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)
        labels = {"fleet": fleet.name}
        # Hetzner refuses a second key with the same fingerprint, so the fleet registers it once.
        self.ssh_key = hcloud.SshKey(
            f"{fleet.name}-deploy",
            name=f"{fleet.name}-deploy",
            public_key=public_key,
            labels=labels,
            opts=child,
        )
        self.firewall = hcloud.Firewall(fleet.name, name=fleet.name, rules=FIREWALL_RULES, labels=labels, opts=child)
        # hcloud wants integer ids; one conversion shared by every server
        self.firewall_ids = [self.firewall.id.apply(int)]
        self.register_outputs({"ssh_key_id": self.ssh_key.id, "firewall_id": self.firewall.id})

    def server(self, fleet: Fleet, machine: Machine, host: HetznerHost, parent: pulumi.Resource) -> hcloud.Server:
        labels = {**host.labels, "fleet": fleet.name, "machine": machine.name}
        firewall_ids = self.firewall_ids
        if host.open_ports:
            # the machine's own firewall, beside the shared one: other servers keep their ports closed
            own = hcloud.Firewall(
                f"{machine.name}-ports",
                name=f"{fleet.name}-{machine.name}-ports",
                rules=open_port_rules(host.open_ports),
                labels=labels,
                opts=pulumi.ResourceOptions(parent=parent, provider=self.provider),
            )
            firewall_ids = [*firewall_ids, own.id.apply(int)]
        return hcloud.Server(
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
            opts=pulumi.ResourceOptions(
                parent=parent,
                provider=self.provider,
                protect=host.protect,
                # changing either would replace (wipe) an installed server
                ignore_changes=["ssh_keys", "user_data"],
            ),
        )
