"""The Compute Engine price tables of fleet_sdk/catalog/prices_gcp.py, printed from public price lists.

    python scripts/refresh_gcp_prices.py PRICING_YML VMS_CSV

PRICING_YML is pricing.yml of github.com/Cyclenerd/google-cloud-pricing-cost-calculator (built weekly
from the Cloud Billing Catalog API: on-demand USD an hour per machine type and region, disks per GB a
month, external IPs). VMS_CSV is catalogs/v8/gcp/vms.csv of github.com/skypilot-org/skypilot-catalog
(also from the Cloud Billing Catalog API), for the GPUs that attach to N1 machines, which pricing.yml
leaves out. The output replaces the tables between the `_TABLE` markers of prices_gcp.py; set TAKEN to
the date pricing.yml says it was generated. Every machine type of the catalog is priced with the new
rates and compared with pricing.yml's own price of that type: a difference is printed to stderr (a
family whose memory per vCPU the catalog has wrong, or a type Google does not sell).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import yaml

from fleet_sdk.catalog import gcp, prices_gcp

TABLES = (
    ("_MACHINES_A", ("e2", "n1", "n2")),
    ("_MACHINES_B", ("n2d", "c2d", "c3")),
    ("_MACHINES_C", ("c4a", "c2", "t2d")),
    ("_MACHINES_D", ("t2a", "g2")),
)
GPUS = {"nvidia-tesla-t4": "T4", "nvidia-tesla-p4": "P4", "nvidia-tesla-p100": "P100", "nvidia-tesla-v100": "V100"}
DISKS = {"pd-standard": "hdd", "pd-balanced": "balanced", "pd-ssd": "ssd"}


def family_rates(instances: Mapping[str, Any], family: str, region: str) -> tuple[float, float] | None:
    """USD an hour per vCPU and per GB of `family` in `region`, fitted to pricing.yml's types (for
    PER_VCPU families and g2, per vCPU with its memory, and for g2 the L4 GPU as the second rate)."""
    rows = []
    for name, entry in instances.items():
        if name.startswith(family + "-") and region in entry["cost"] and gcp.machine_type(name):
            second = entry.get("l4", 0) if family == "g2" else entry["ram"]
            rows.append((entry["cpu"], second, entry["cost"][region]["hour"]))
    if not rows:
        return None
    a = np.array([[cpu, second] for cpu, second, _ in rows], float)
    b = np.array([hour for *_, hour in rows], float)
    if family in prices_gcp.PER_VCPU:
        return round(float(b[0] / a[0][0]), 10), 0.0
    (vcpu, second), *_ = np.linalg.lstsq(a, b, rcond=None)
    return round(float(vcpu), 10), round(float(second), 10)


def table(name: str, columns: list[str], cell: Callable[[str, str], float | None]) -> str:
    widths = [max(14, len(c) + 2) for c in columns]
    header = f"{'region':<24}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
    rows = [header]
    for region in gcp.REGIONS:
        values = ["-" if v is None else repr(v) for v in (cell(region, c) for c in columns)]
        rows.append(f"{region:<24}" + "".join(f"{v:>{w}}" for v, w in zip(values, widths, strict=True)))
    return f'{name} = """\n' + "\n".join(rows) + '\n"""'


def gpu_rates(vms_csv: str) -> dict[tuple[str, str], float]:
    """(accelerator, region) -> USD an hour for one GPU."""
    found: dict[tuple[str, str], float] = {}
    with open(vms_csv, newline="") as f:
        for row in csv.DictReader(f):
            if not row["InstanceType"] and row["AcceleratorName"] in GPUS.values() and row["Price"]:
                count = float(row["AcceleratorCount"])
                found[(row["AcceleratorName"], row["Region"])] = round(float(row["Price"]) / count, 10)
    return found


def main(pricing_yml: str, vms_csv: str) -> None:
    with open(pricing_yml) as f:
        data = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 (safe loaders only)
    compute = data["compute"]
    instances = compute["instance"]
    for name, families in TABLES:
        rates = {(fam, r): family_rates(instances, fam, r) for fam in families for r in gcp.REGIONS}
        columns = [f"{fam}:{part}" for fam in families for part in ("vcpu", "gb" if fam != "g2" else "l4")]

        def machine_cell(region: str, column: str, rates: Any = rates) -> float | None:
            fam, part = column.split(":")
            found = rates[(fam, region)]
            return None if found is None else found[0 if part == "vcpu" else 1]

        print(table(name, columns, machine_cell) + "\n")
    shared = list(gcp.SHARED_CORE)
    print(table("_SHARED_CORE", shared, lambda r, t: instances.get(t, {}).get("cost", {}).get(r, {}).get("hour")))
    print()
    gpus = gpu_rates(vms_csv)
    print(table("_GPUS", list(GPUS), lambda r, g: gpus.get((GPUS[g], r))) + "\n")
    storage = compute["storage"]
    print(table("_DISKS", list(DISKS), lambda r, d: storage[DISKS[d]]["cost"].get(r, {}).get("month")))
    print(f"# generated: {data['about']['generated']}; external IPv4:", compute["network"]["ip"]["vm"]["cost"])
    check(instances)


def check(instances: Mapping[str, Any]) -> None:
    """Every catalog type priced by prices_gcp (as it is now) against pricing.yml's own price."""
    for family, f in gcp.FAMILIES.items():
        for kind, counts in f.kinds.items():
            for n in counts:
                name = f"{family}-{kind}-{n}"
                for region in gcp.REGIONS:
                    ours = prices_gcp.machine_hourly(name, region)
                    theirs = instances.get(name, {}).get("cost", {}).get(region, {}).get("hour")
                    if (ours is None) != (theirs is None) or (ours and theirs and abs(ours.amount - theirs) > 1e-6):
                        print(f"differs: {name} in {region}: ours {ours}, pricing.yml {theirs}", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:3])
