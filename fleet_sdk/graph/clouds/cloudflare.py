"""Cloudflare DNS: A and AAAA records <machine>.<zone> for the machines whose host asks for them
(`Host.dns_records`, e.g. HetznerHost(dns=True)).

The zone is named by stack config (fleet:cloudflareZone) and its id looked up with the getZone invoke,
so the API token needs Zone Read besides DNS Write. pulumi_cloudflare takes about two seconds to import:
it is imported only when a record is declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

ZONE_LOOKUP = "cloudflare:index/getZone:getZone"


@dataclass(frozen=True)
class CloudflareZoneArgs:
    zone: str  # stack config fleet:cloudflareZone
    # the API token as a Pulumi secret, from the clan secret stack config names; None: the default
    # provider (cloudflare:apiToken)
    token: pulumi.Output[str] | None = None


class CloudflareZone(pulumi.ComponentResource):
    """The zone the fleet's records live in (`fleet:cloudflare:Zone`, composite): its provider and id
    lookup. Named after the zone."""

    def __init__(self, name: str, args: CloudflareZoneArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleet:cloudflare:Zone", name, None, opts)
        import pulumi_cloudflare as cloudflare

        self._cloudflare = cloudflare
        self.zone = zone = args.zone
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        # an explicit provider when the token comes from a clan secret; else the default (cloudflare:apiToken)
        self.provider = cloudflare.Provider(name, api_token=args.token, opts=child) if args.token is not None else None
        found = cloudflare.get_zone_output(
            filter={"name": zone, "match": "all"},
            opts=pulumi.InvokeOutputOptions(parent=self, provider=self.provider),
        )
        self.zone_id: pulumi.Output[str] = found.id
        self.register_outputs({"zone_id": self.zone_id})

    def records(
        self, machine: str, ipv4: pulumi.Output[str], ipv6: pulumi.Output[str] | None, parent: pulumi.Resource
    ) -> list[Any]:
        """The machine's A and AAAA records (A only without IPv6), parented to `parent` (the
        machine's component)."""
        opts = pulumi.ResourceOptions(parent=parent, provider=self.provider)
        addresses = [("A", ipv4)] if ipv6 is None else [("A", ipv4), ("AAAA", ipv6)]
        return [
            self._cloudflare.DnsRecord(
                f"{machine}-{kind.lower()}",
                zone_id=self.zone_id,
                # the fully qualified name: given a short one, Cloudflare stores the FQDN and every
                # later preview shows a change (cloudflare/terraform-provider-cloudflare#5517)
                name=f"{machine}.{self.zone}",
                type=kind,
                content=address,
                ttl=1,  # automatic
                proxied=False,  # the machine itself answers (ssh, ACME, its own TLS)
                opts=opts,
            )
            for kind, address in addresses
        ]
