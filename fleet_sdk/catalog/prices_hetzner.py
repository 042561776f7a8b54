"""Hetzner Cloud list prices: EUR a month, net of VAT, per server type and location, and the primary IPv4
address every server of this project has (graph.clouds.hetzner enables it; Hetzner bills it apart).

Hetzner bills by the hour up to the monthly price; these are the monthly prices. Its website shows a
server's price with the primary IPv4 added; here a server's price is without it (as the Cloud API's
`/v1/pricing` gives it), and PRIMARY_IPV4 is the IPv4's. Each table says when it was taken and where
from; README "Cost" says how to refresh them. Since 2026-06-15 Hetzner charges its new prices for new
servers and for servers rescaled to another type; a server created before keeps the rate it had.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleet_sdk.catalog.hetzner import EU
from fleet_sdk.catalog.prices import Price

CURRENCY = "EUR"


@dataclass(frozen=True)
class Table:
    taken: str  # ISO date
    source: str
    locations: tuple[str, ...]
    monthly: Mapping[str, float]  # server type -> EUR a month, net, without the primary IPv4


TABLES = (
    # Shared vCPU in Falkenstein, Nuremberg and Helsinki, as hetzner.com listed them on 2026-09-04 (its
    # price API, website-price-api.hetzner.com, read by https://github.com/robhunter/agentdeals/issues/1181);
    # shown there with the primary IPv4 (CX23 €5.99), taken off here. Hetzner marked them out of stock.
    Table(
        "2026-09-04",
        "https://github.com/robhunter/agentdeals/issues/1181",
        EU,
        {
            "cx23": 5.49,
            "cx33": 8.49,
            "cx43": 15.99,
            "cx53": 29.49,
            "cax11": 5.99,
            "cax21": 10.49,
            "cax31": 20.99,
            "cax41": 40.99,
        },
    ),
    # Dedicated vCPU in the same locations after the 2026-06-15 adjustment: the German prices with the
    # primary IPv4 and 19% VAT of https://github.com/vitabaks/autobase (console/db/migrations/
    # 20260723120000_2_10_0.sql), divided by 1.19 and the IPv4 taken off (CCX13: 51.75 / 1.19 - 0.50).
    Table(
        "2026-07-23",
        "https://github.com/vitabaks/autobase/blob/main/console/db/migrations/20260723120000_2_10_0.sql",
        EU,
        {"ccx13": 42.99, "ccx23": 85.99, "ccx33": 138.49, "ccx43": 275.99, "ccx53": 533.49, "ccx63": 853.49},
    ),
    # Ashburn and Hillsboro: the newest prices found, from 2025-10-21, before Hetzner's increases of
    # 2026-04-01 and 2026-06-15 (refresh them: README "Cost"); shown with the primary IPv4, taken off here.
    Table(
        "2025-10-21",
        "https://github.com/tonoid/hcloud-multiregion-mongodb-replicaset/blob/main/HETZNER_SERVERS.md",
        ("ash", "hil"),
        {
            "cpx11": 4.49,
            "cpx21": 8.99,
            "cpx31": 15.99,
            "cpx41": 29.99,
            "cpx51": 59.99,
            "ccx13": 12.99,
            "ccx23": 25.99,
            "ccx33": 49.99,
            "ccx43": 99.99,
            "ccx53": 199.99,
            "ccx63": 299.99,
        },
    ),
    # Singapore, the same source and date as Ashburn and Hillsboro.
    Table(
        "2025-10-21",
        "https://github.com/tonoid/hcloud-multiregion-mongodb-replicaset/blob/main/HETZNER_SERVERS.md",
        ("sin",),
        {"ccx13": 21.00, "ccx23": 39.40, "ccx33": 74.40, "ccx43": 137.00, "ccx53": 294.00, "ccx63": 482.00},
    ),
)

# The primary IPv4 of a server, in every location: €0.50 a month (€0.0008 an hour), unchanged by the
# 2026-06-15 adjustment (which left IPs out), as the autobase migration above states it.
PRIMARY_IPV4 = Price(0.50, CURRENCY, "2026-07-23")

# Server types Hetzner no longer sells: existing servers run on, but no list price is published
# (https://docs.hetzner.cloud/changelog#2025-10-16-server-types-deprecated, removed in January 2026).
RETIRED: dict[str, str] = dict.fromkeys(("cx22", "cx32", "cx42", "cx52"), "2026-01")


def server_monthly(server_type: str, location: str) -> Price | None:
    """The server's list price a month without its primary IPv4; None when no table has it."""
    for table in TABLES:
        if location in table.locations and server_type in table.monthly:
            return Price(table.monthly[server_type], CURRENCY, table.taken)
    return None


def taken() -> str:
    """When the tables were taken, oldest to newest."""
    dates = sorted({t.taken for t in TABLES} | {PRIMARY_IPV4.taken})
    return dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
