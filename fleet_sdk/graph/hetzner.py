"""Hetzner Cloud resources: the fleet's deploy key and firewall, and one server per machine."""

from __future__ import annotations

import pulumi
import pulumi_hcloud as hcloud

from fleet_sdk.spec import Fleet, HetznerHost, Machine

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


class HetznerCloud(pulumi.ComponentResource):
    """What every Hetzner server of the fleet shares: the deploy key and the firewall."""

    def __init__(self, fleet: Fleet, public_key: pulumi.Input[str], opts: pulumi.ResourceOptions) -> None:
        super().__init__("fleet:hetzner:Cloud", fleet.name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
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
        return hcloud.Server(
            machine.name,
            name=machine.name,
            server_type=host.server_type,
            location=host.location,
            image=host.image,  # only the bootstrap OS: nixos-anywhere replaces it
            ssh_keys=[self.ssh_key.id],
            firewall_ids=self.firewall_ids,
            public_nets=[{"ipv4_enabled": True, "ipv6_enabled": True}],
            labels=labels,
            delete_protection=host.protect,
            rebuild_protection=host.protect,
            opts=pulumi.ResourceOptions(
                parent=parent,
                protect=host.protect,
                # changing either would replace (wipe) an installed server
                ignore_changes=["ssh_keys", "user_data"],
            ),
        )
