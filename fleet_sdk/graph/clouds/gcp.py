"""Google Compute Engine resources: firewall rules on the fleet's network tag, one instance per machine
(with a rule on a tag of its own when it opens more ports).

pulumi_gcp.compute costs about a second to import (reference/pulumi.md §7), so it is imported only
when the fleet has an enabled GCP machine. Registered as the `gcp` cloud plug-in.
"""

from __future__ import annotations

import re
from typing import Any

import pulumi

from fleet_sdk.graph.clouds import CloudArgs, CloudPlugin, Server, register
from fleet_sdk.spec import Fleet, GcpHost, Machine
from fleet_sdk.spec.hosts import port_ranges

# nixos-anywhere logs in as root with the deploy key, which GCE images refuse by default.
ROOT_LOGIN_SCRIPT = """#!/bin/sh
set -eu
keys=$(curl -fsS -H 'Metadata-Flavor: Google' \\
  http://metadata.google.internal/computeMetadata/v1/instance/attributes/ssh-keys | sed -n 's/^root://p')
install -d -m 700 /root/.ssh
printf '%s\\n' "$keys" >> /root/.ssh/authorized_keys
sort -u -o /root/.ssh/authorized_keys /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
sed -i 's/^#\\?PermitRootLogin.*/PermitRootLogin prohibit-password/' /etc/ssh/sshd_config
grep -q '^PermitRootLogin' /etc/ssh/sshd_config ||
  echo 'PermitRootLogin prohibit-password' >> /etc/ssh/sshd_config
systemctl reload ssh || systemctl reload sshd
"""

PORTS = {"ssh": ("tcp", "22"), "zerotier": ("udp", "9993")}
# What an adopted instance (GcpHost.instance_id) keeps as it is while it is adopted: an instance made
# by other tools differs in these from what the stack declares, and an import whose inputs differ from
# the live instance fails. Once imported, remove instance_id and the next `pulumi up` updates them.
ADOPTED_IGNORED = ["metadata", "tags", "labels", "deletion_protection", "allow_stopping_for_update"]


def gce_label(value: str) -> str:
    """GCE names, tags and label values: lower case letters, digits and '-'."""
    return re.sub(r"[^a-z0-9-]", "-", value.lower())


def open_port_allows(open_ports: tuple[str, ...]) -> list[dict[str, Any]]:
    """A host's open_ports ("tcp/443", "udp/60000-61000") as firewall allows, one per protocol."""
    ports: dict[str, list[str]] = {}
    for protocol, port, _entry in port_ranges(open_ports):
        ports.setdefault(protocol, []).append(port)
    return [{"protocol": protocol, "ports": listed} for protocol, listed in ports.items()]


class GcpCloud(pulumi.ComponentResource):
    """What every instance of the fleet shares (`fleet:gcp:Cloud`, composite): firewall rules that let
    SSH and ZeroTier reach every instance carrying the fleet's tag, and the deploy key (as instance
    metadata) and provider they use."""

    def __init__(self, name: str, args: CloudArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleet:gcp:Cloud", name, None, opts)
        import pulumi_gcp as gcp

        fleet = args.fleet
        self._compute = gcp.compute
        self.tag = f"fleet-{gce_label(fleet.name)}"
        self.public_key = pulumi.Output.from_input(args.public_key)
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        self.provider = None
        if args.credential is not None:
            # an explicit provider reads no gcp:* stack config itself: hand project and location over
            config = pulumi.Config("gcp")
            self.provider = gcp.Provider(
                name,
                credentials=args.credential,
                project=config.get("project"),
                region=config.get("region"),
                zone=config.get("zone"),
                opts=child,
            )
        shared = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(provider=self.provider))
        self.firewalls = [
            gcp.compute.Firewall(
                f"{name}-{purpose}",
                name=f"{self.tag}-{purpose}",
                network="default",
                allows=[{"protocol": protocol, "ports": [port]}],
                source_ranges=["0.0.0.0/0"],
                target_tags=[self.tag],
                opts=shared,
            )
            for purpose, (protocol, port) in PORTS.items()
        ]
        self.register_outputs({"tag": self.tag})

    def machine_tag(self, machine: Machine) -> str:
        return f"{self.tag}-{gce_label(machine.name)}"

    def server(self, fleet: Fleet, machine: Machine, opts: pulumi.ResourceOptions) -> Server:
        host = machine.host
        assert isinstance(host, GcpHost)  # the plug-in serves its own host model only
        instance = self.instance(fleet, machine, host, opts)
        return Server(instance, ipv4=instance.network_interfaces.apply(nat_ip))

    def instance(self, fleet: Fleet, machine: Machine, host: GcpHost, opts: pulumi.ResourceOptions) -> Any:
        accelerators: dict[str, Any] = {}
        if host.gpu_type:
            accelerators = {
                "guest_accelerators": [{"type": host.gpu_type, "count": host.gpu_count}],
                # instances with GPUs cannot live-migrate
                "scheduling": {"on_host_maintenance": "TERMINATE", "automatic_restart": True},
            }
        tags, firewalls = [self.tag], list(self.firewalls)
        if host.open_ports:
            # a rule on a tag only this instance carries: other instances keep their ports closed
            tag = self.machine_tag(machine)
            firewalls.append(
                self._compute.Firewall(
                    f"{machine.name}-ports",
                    name=f"{tag}-ports",
                    network="default",
                    allows=open_port_allows(host.open_ports),
                    source_ranges=["0.0.0.0/0"],
                    target_tags=[tag],
                    opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(provider=self.provider)),
                )
            )
            tags.append(tag)
        return self._compute.Instance(
            machine.name,
            name=machine.name,
            machine_type=host.machine_type,
            zone=host.zone,
            boot_disk={"initialize_params": {"image": host.image, "size": host.boot_disk_gb}},
            network_interfaces=[{"network": "default", "access_configs": [{}]}],
            metadata={"ssh-keys": self.public_key.apply(lambda key: f"root:{key}")},
            metadata_startup_script=ROOT_LOGIN_SCRIPT,
            tags=tags,
            labels={**host.labels, "fleet": gce_label(fleet.name), "machine": machine.name},
            allow_stopping_for_update=True,
            deletion_protection=host.protect,
            **accelerators,
            opts=pulumi.ResourceOptions.merge(
                opts,
                pulumi.ResourceOptions(
                    provider=self.provider,
                    protect=host.protect,
                    depends_on=firewalls,
                    # the bootstrap OS only matters before nixos-anywhere; changing it must not reinstall
                    ignore_changes=[
                        "metadata_startup_script",
                        "boot_disk",
                        # an instance's name cannot change in place: a renamed machine keeps its instance
                        *(["name"] if machine.renamed_from else []),
                        *(ADOPTED_IGNORED if host.import_id is not None else []),
                    ],
                    import_=host.import_id,
                ),
            ),
        )


def nat_ip(nics: Any) -> str | None:
    """The instance's public address: the NAT IP of its first access config that has one."""
    for nic in nics or []:
        for ac in (nic.get("access_configs") if isinstance(nic, dict) else nic.access_configs) or []:
            ip = ac.get("nat_ip") if isinstance(ac, dict) else ac.nat_ip
            if ip:
                return str(ip)
    return None


PLUGIN = register(CloudPlugin(kind="gcp", host=GcpHost, component=GcpCloud))
