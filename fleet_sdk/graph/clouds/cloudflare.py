"""Cloudflare DNS: A and AAAA records <machine>.<zone> for the Hetzner machines with dns=True.

The zone is named by stack config (fleet:cloudflareZone) and its id looked up with the getZone invoke,
so the API token needs Zone Read besides DNS Write. pulumi_cloudflare takes about two seconds to import:
it is imported only when a record is declared.
"""

from __future__ import annotations

from typing import Any

import pulumi

ZONE_LOOKUP = "cloudflare:index/getZone:getZone"


class CloudflareZone(pulumi.ComponentResource):
    """The zone the fleet's records live in (`fleet:cloudflare:Zone`): its provider and id lookup."""

    def __init__(self, zone: str, token: pulumi.Output[str] | None, opts: pulumi.ResourceOptions) -> None:
        super().__init__("fleet:cloudflare:Zone", zone, None, opts)
        import pulumi_cloudflare as cloudflare

        self._cloudflare = cloudflare
        self.zone = zone
        # an explicit provider when the token comes from a clan secret; else the default (cloudflare:apiToken)
        self.provider = (
            cloudflare.Provider(zone, api_token=token, opts=pulumi.ResourceOptions(parent=self))
            if token is not None
            else None
        )
        found = cloudflare.get_zone_output(
            filter={"name": zone, "match": "all"},
            opts=pulumi.InvokeOutputOptions(parent=self, provider=self.provider),
        )
        self.zone_id: pulumi.Output[str] = found.id
        self.register_outputs({"zone_id": self.zone_id})

    def records(
        self, machine: str, ipv4: pulumi.Output[str], ipv6: pulumi.Output[str], parent: pulumi.Resource
    ) -> list[Any]:
        """The machine's A and AAAA records, parented to `parent` (the machine's component)."""
        opts = pulumi.ResourceOptions(parent=parent, provider=self.provider)
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
            for kind, address in (("A", ipv4), ("AAAA", ipv6))
        ]
