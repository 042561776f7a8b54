"""A price from the catalog's price tables (prices_hetzner, prices_gcp): an amount in its currency, and
the day the table it comes from was taken. README "Cost" says where the tables come from and how to
refresh them. Currencies are never converted: a fleet's cost is a total per currency.
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_A_MONTH = 730  # the month of on-demand hours both clouds quote (8,760 hours a year / 12)


@dataclass(frozen=True)
class Price:
    amount: float
    currency: str  # "EUR" | "USD"
    taken: str  # ISO date the table was taken

    def times(self, factor: float) -> Price:
        return Price(self.amount * factor, self.currency, self.taken)
