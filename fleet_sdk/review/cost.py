"""What the fleet costs a month at the catalog's list prices (catalog.prices_hetzner, prices_gcp).

`fleet_cost(fleet)` prices each machine that gets cloud resources (enabled, with a host) and totals
them per currency (never converted); a declared host whose type, location, GPU or disk has no price is
refused naming the machine and the field. In the plan document (DESIGN §5) each machine has

    "cost": {"monthly": float, "currency": "EUR" | "USD", "items": [{"what", "monthly"}]} | null

(null: no cloud resources; `"monthly": null` and a `note` saying why for a server type Hetzner no
longer sells, which has no list price, or a host kind without price tables) and the document

    "cost": {"monthly": {CURRENCY: total}, "prices_taken": DATE | null}

with the oldest date of the prices it used. A Hetzner server is its type plus its primary IPv4; a
Compute Engine instance its machine type, GPUs, boot disk and external IPv4. Amounts are rounded to
cents, item by item.

`cost_delta(old, new)` is the monthly change of `fleet plan --against` (review.diff), per machine and
in total: `{"old": {CURRENCY: amount}, "new": {…}, "delta": {…}}`; `markdown_line` renders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleet_sdk.catalog import gcp, prices_gcp, prices_hetzner
from fleet_sdk.catalog.prices import HOURS_A_MONTH, Price
from fleet_sdk.errors import SpecError
from fleet_sdk.spec import Fleet, GcpHost, HetznerHost, Machine

SYMBOLS = {"EUR": "€", "USD": "$"}


@dataclass
class FleetCost:
    machines: dict[str, dict[str, Any] | None]
    monthly: dict[str, float]
    taken: str | None

    def document(self) -> dict[str, Any]:
        return {"monthly": self.monthly, "prices_taken": self.taken}


def _missing(machine: str, what: str, where: str, prices: str, module: str) -> str:
    return (
        f"machine {machine!r}: {what} in {where} has no price in the catalog (prices taken {prices}); "
        f"add it to fleet_sdk/catalog/{module}.py"
    )


def hetzner_items(name: str, host: HetznerHost) -> tuple[list[tuple[str, Price]], list[str]]:
    """The priced items of a Hetzner server and the problems (unpriced fields) of pricing it."""
    server = prices_hetzner.server_monthly(host.server_type, host.location)
    if server is None:
        what, where = f"host.server_type {host.server_type!r}", f"{host.location!r}"
        return [], [_missing(name, what, where, prices_hetzner.taken(), "prices_hetzner")]
    return [
        (f"server {host.server_type} in {host.location}", server),
        ("primary IPv4", prices_hetzner.PRIMARY_IPV4),
    ], []


def _times(price: Price | None, factor: float) -> Price | None:
    return None if price is None else price.times(factor)


def gcp_items(name: str, host: GcpHost) -> tuple[list[tuple[str, Price]], list[str]]:
    """The priced items of a Compute Engine instance (monthly) and the problems of pricing it."""
    region, disk, month = gcp.region_of(host.zone), prices_gcp.BOOT_DISK_TYPE, HOURS_A_MONTH
    machine = prices_gcp.machine_hourly(host.machine_type, region)
    found = [
        (f"machine {host.machine_type} in {region}", f"host.machine_type {host.machine_type!r}", _times(machine, month))
    ]
    if host.gpu_type and host.gpu_count:
        gpu = _times(prices_gcp.gpu_hourly(host.gpu_type, region), month * host.gpu_count)
        found.append((f"{host.gpu_count}x {host.gpu_type}", f"host.gpu_type {host.gpu_type!r}", gpu))
    per_gb = prices_gcp.disk_monthly_per_gb(disk, region)
    found.append(
        (f"boot disk {host.boot_disk_gb} GB {disk}", f"boot disk type {disk!r}", _times(per_gb, host.boot_disk_gb))
    )
    ipv4 = _times(prices_gcp.external_ipv4_hourly(region), month)
    found.append(("external IPv4", "an external IPv4", ipv4))
    where = f"region {region!r} (host.zone {host.zone!r})"
    problems = [_missing(name, what, where, prices_gcp.taken(), "prices_gcp") for _, what, p in found if p is None]
    return [(item, p) for item, _, p in found if p is not None], problems


@dataclass
class MachineCost:
    entry: dict[str, Any] | None  # the document's `cost` of the machine
    taken: str | None  # the oldest date of its prices
    problems: list[str]  # unpriced fields: refused


def _unpriced(machine: Machine, currency: str | None, note: str) -> MachineCost:
    """A machine whose cost no list price tells: left out of the totals, with the reason."""
    entry: dict[str, Any] = {"monthly": None, "currency": currency, "items": [], "note": note}
    return MachineCost(entry if machine.cloud else None, None, [])


def machine_cost(machine: Machine) -> MachineCost:
    """The machine's cost; problems for a declared host without a price, enabled or not."""
    host = machine.host
    if host is None:
        return MachineCost(None, None, [])
    if isinstance(host, HetznerHost) and host.server_type in prices_hetzner.RETIRED:
        since = prices_hetzner.RETIRED[host.server_type]
        return _unpriced(
            machine, prices_hetzner.CURRENCY, f"Hetzner no longer sells {host.server_type} (since {since})"
        )
    if isinstance(host, HetznerHost):
        items, problems = hetzner_items(machine.name, host)
    elif isinstance(host, GcpHost):
        items, problems = gcp_items(machine.name, host)
    else:
        return _unpriced(machine, None, f"the catalog has no prices for host kind {host.kind!r}")
    if problems or not machine.cloud:
        return MachineCost(None, None, problems)
    amounts = [round(p.amount, 2) for _, p in items]
    rounded = [{"what": what, "monthly": amount} for (what, _), amount in zip(items, amounts, strict=True)]
    entry = {"monthly": round(sum(amounts), 2), "currency": items[0][1].currency, "items": rounded}
    return MachineCost(entry, min(p.taken for _, p in items), [])


def fleet_cost(fleet: Fleet) -> FleetCost:
    """Every machine's cost and the totals; SpecError names each declared host that has no price."""
    machines: dict[str, dict[str, Any] | None] = {}
    problems: list[str] = []
    taken: list[str] = []
    for m in fleet.machines:
        found = machine_cost(m)
        problems += found.problems
        taken += [found.taken] if found.taken else []
        machines[m.name] = found.entry
    if problems:
        raise SpecError(problems)
    totals: dict[str, float] = {}
    for entry in machines.values():
        if entry is not None and entry["monthly"] is not None:
            totals[entry["currency"]] = round(totals.get(entry["currency"], 0.0) + entry["monthly"], 2)
    return FleetCost(machines, dict(sorted(totals.items())), min(taken) if taken else None)


def money(currency: str, amount: float, sign: bool = False) -> str:
    """`€16.49`, `$540.55`; with `sign`, `+€13.50` / `-€13.50`."""
    text = f"{SYMBOLS.get(currency, currency + ' ')}{abs(amount):,.2f}"
    return ("-" if amount < 0 else "+" if sign else "") + text


def machine_line(entry: dict[str, Any] | None) -> str | None:
    """`cost: €16.49 a month (server cx43 in fsn1 €15.99, primary IPv4 €0.50)` of a machine's entry."""
    if not entry:
        return None
    if entry["monthly"] is None:
        return f"cost: unknown, left out of the total: {entry['note']}, no list price"
    c = entry["currency"]
    items = ", ".join(f"{i['what']} {money(c, i['monthly'])}" for i in entry["items"])
    return f"cost: {money(c, entry['monthly'])} a month ({items})"


def total_line(cost: dict[str, Any] | None) -> str | None:
    """`monthly cost: €46.48 (list prices taken 2026-07-23)` of a document's `cost`."""
    if not cost or not cost.get("monthly"):
        return None
    totals = " + ".join(money(c, amount) for c, amount in cost["monthly"].items())
    return f"monthly cost: {totals} (list prices taken {cost['prices_taken']})"


def _amounts(entry: dict[str, Any] | None) -> dict[str, float]:
    return {entry["currency"]: entry["monthly"]} if entry and entry.get("monthly") is not None else {}


def _delta(old: dict[str, float], new: dict[str, float]) -> dict[str, Any]:
    currencies = sorted(old.keys() | new.keys())
    return {
        "old": old,
        "new": new,
        "delta": {c: round(new.get(c, 0.0) - old.get(c, 0.0), 2) for c in currencies},
    }


def machine_delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any] | None:
    """A machine's cost change between two plan documents' machine entries; None when it has none."""
    old, new = _amounts((before or {}).get("cost")), _amounts((after or {}).get("cost"))
    return _delta(old, new) if old or new else None


def annotate(machines: dict[str, dict[str, Any]], old: dict[str, Any], new: dict[str, Any]) -> None:
    """Set `cost` (machine_delta) on each machine entry of a plan diff; null for all of them when a
    plan has no cost."""
    priced = "cost" in old and "cost" in new
    for name, entry in machines.items():
        before, after = ((doc.get("machines") or {}).get(name) for doc in (old, new))
        entry["cost"] = machine_delta(before, after) if priced else None


def cost_delta(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """The fleet's monthly cost change; None when a plan has no cost (one made before costs were)."""
    if "cost" not in old or "cost" not in new:
        return None
    return _delta(dict(old["cost"].get("monthly") or {}), dict(new["cost"].get("monthly") or {}))


def markdown_line(diff: Mapping[str, Any]) -> str:
    """`monthly cost: +€13.50 (€46.48 → €59.98)` per currency that either side has; "" without costs."""
    cost = diff.get("cost")
    if not cost or not cost.get("delta"):
        return ""
    old, new = cost["old"], cost["new"]
    changed = {c: d for c, d in cost["delta"].items() if d}
    if not changed:
        return "monthly cost: unchanged (" + " · ".join(money(c, new[c]) for c in cost["delta"]) + ")"
    parts = [
        f"{money(c, d, sign=True)} ({money(c, old.get(c, 0.0))} → {money(c, new.get(c, 0.0))})"
        for c, d in changed.items()
    ]
    return "monthly cost: " + " · ".join(parts)
