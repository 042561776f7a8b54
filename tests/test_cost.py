"""The fleet's monthly cost at the catalog's list prices (review.cost, catalog.prices_*): the prod stack's
total against a hand computation, the review's delta for enabling one machine, refusals of hosts the
catalog has no price for, the text and markdown lines, and the price tables' agreement with the
catalog of server types, machine families, GPUs and regions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleet_sdk import cli
from fleet_sdk.catalog import gcp, hetzner, prices_gcp, prices_hetzner
from fleet_sdk.catalog.prices import HOURS_A_MONTH
from fleet_sdk.errors import SpecError
from fleet_sdk.review import cost
from fleet_sdk.review import plan as planning
from fleet_sdk.review.diff import diff_plans
from fleet_sdk.review.markdown import render_markdown
from fleet_sdk.spec import Fleet, GcpHost, HetznerHost, Machine

from .conftest import PROJECT, prod_everyone


def eur(server_type: str, location: str) -> float:
    """A Hetzner server's monthly list price with its primary IPv4, from the catalog."""
    server = prices_hetzner.server_monthly(server_type, location)
    assert server is not None
    return server.amount + prices_hetzner.PRIMARY_IPV4.amount


def rate(column: str, region: str = "us-central1") -> float:
    """A Compute Engine rate an hour from the catalog's table (`e2:vcpu`, `n1:gb`, …)."""
    return prices_gcp._RATES[column][region]


@pytest.fixture(scope="module")
def prod_plan() -> planning.Plan:
    return planning.make_plan(PROJECT, "prod")


def test_the_prod_stacks_monthly_total_is_the_catalogs_prices_added_by_hand(prod_plan: planning.Plan) -> None:
    # enabled with cloud resources: cinnabar (cx43 in fsn1) and magnetite (cx53 in fsn1), each with its
    # primary IPv4; electrum, galena and scheelite are switched off, pyrite and the darwin machines
    # have no host. Today: (15.99 + 0.50) + (29.49 + 0.50) = 46.48 EUR.
    cinnabar = round(prices_hetzner.server_monthly("cx43", "fsn1").amount + 0.50, 2)
    magnetite = round(prices_hetzner.server_monthly("cx53", "fsn1").amount + 0.50, 2)
    assert prices_hetzner.PRIMARY_IPV4.amount == 0.50
    assert prod_plan.document["cost"]["monthly"] == {"EUR": round(cinnabar + magnetite, 2)}
    assert prod_plan.document["cost"]["prices_taken"] == min(
        prices_hetzner.PRIMARY_IPV4.taken, *(t.taken for t in prices_hetzner.TABLES if "cx43" in t.monthly)
    )
    machines = prod_plan.document["machines"]
    assert machines["cinnabar"]["cost"] == {
        "monthly": cinnabar,
        "currency": "EUR",
        "items": [
            {"what": "server cx43 in fsn1", "monthly": prices_hetzner.server_monthly("cx43", "fsn1").amount},
            {"what": "primary IPv4", "monthly": 0.50},
        ],
    }
    assert machines["magnetite"]["cost"]["monthly"] == magnetite
    assert all(machines[m]["cost"] is None for m in machines if m not in ("cinnabar", "magnetite"))


def test_every_prod_machine_enabled_is_priced_item_by_item() -> None:
    priced = cost.fleet_cost(prod_everyone())
    month = HOURS_A_MONTH  # 730 hours
    # galena: e2-standard-8 (8 vCPUs, 32 GB) in us-central1, a 100 GB pd-standard boot disk, an external IPv4
    galena = [
        round((8 * rate("e2:vcpu") + 32 * rate("e2:gb")) * month, 2),  # (8 x 0.02181159 + 32 x 0.00292353) x 730
        round(100 * prices_gcp._DISK["pd-standard"]["us-central1"], 2),  # 100 x 0.04
        round(0.005 * month, 2),  # 3.65
    ]
    # scheelite: n1-standard-8 (8 vCPUs, 30 GB) and one T4 in us-central1, the same disk and IPv4
    scheelite = [
        round((8 * rate("n1:vcpu") + 30 * rate("n1:gb")) * month, 2),  # (8 x 0.031611 + 30 x 0.004237) x 730
        round(prices_gcp._GPU["nvidia-tesla-t4"]["us-central1"] * month, 2),  # 0.35 x 730
        *galena[1:],
    ]
    assert [i["monthly"] for i in priced.machines["galena"]["items"]] == galena
    assert [i["monthly"] for i in priced.machines["scheelite"]["items"]] == scheelite
    hetzner_total = eur("cx43", "fsn1") + eur("ccx23", "fsn1") + eur("cx53", "fsn1")
    assert priced.monthly == {"EUR": round(hetzner_total, 2), "USD": round(sum(galena) + sum(scheelite), 2)}
    assert priced.machines["galena"]["currency"] == "USD" and priced.machines["pyrite"] is None


def test_the_text_shows_each_machines_cost_and_the_total(prod_plan: planning.Plan) -> None:
    lines = planning.render_text(prod_plan).splitlines()
    server = prices_hetzner.server_monthly("cx43", "fsn1").amount
    at = lines.index(next(line for line in lines if line.startswith("cinnabar ")))
    line = f"  cost: €{eur('cx43', 'fsn1'):.2f} a month (server cx43 in fsn1 €{server:.2f}, primary IPv4 €0.50)"
    assert line in lines[at : at + 5]
    total, taken = prod_plan.document["cost"]["monthly"]["EUR"], prod_plan.document["cost"]["prices_taken"]
    assert f"monthly cost: €{total:.2f} (list prices taken {taken})" in lines
    pyrite = lines.index(next(line for line in lines if line.startswith("pyrite ")))
    assert not any(line.startswith("  cost:") for line in lines[pyrite : pyrite + 5])  # no host, no cost


def test_the_plan_document_is_the_same_bytes_twice(prod_plan: planning.Plan) -> None:
    assert planning.make_plan(PROJECT, "prod").to_json() == prod_plan.to_json()


def test_enabling_one_machine_costs_that_machines_price(prod_plan: planning.Plan) -> None:
    enabled = [m.name for m in prod_plan.fleet.machines if m.enabled]  # Pulumi.prod.yaml's fleet:enabled
    head = planning.make_plan(PROJECT, "prod", ["fleet:enabled=" + json.dumps([*enabled, "galena"])]).document
    galena = head["machines"]["galena"]["cost"]["monthly"]
    assert galena == cost.fleet_cost(prod_everyone()).machines["galena"]["monthly"]
    diff = diff_plans(prod_plan.document, head)
    assert diff["cost"] == {
        "old": {"EUR": 46.48},
        "new": {"EUR": 46.48, "USD": galena},
        "delta": {"EUR": 0.0, "USD": galena},
    }
    assert diff["machines"]["galena"]["cost"] == {"old": {}, "new": {"USD": galena}, "delta": {"USD": galena}}
    assert diff["machines"]["cinnabar"]["cost"]["delta"] == {"EUR": 0.0}
    assert diff["machines"]["pyrite"]["cost"] is None
    assert f"\nmonthly cost: +${galena:,.2f} ($0.00 → ${galena:,.2f})\n" in render_markdown(diff)


def test_a_plan_without_costs_gives_no_delta(prod_plan: planning.Plan) -> None:
    old = {k: v for k, v in prod_plan.document.items() if k != "cost"}  # a plan made before costs were
    diff = diff_plans(old, prod_plan.document)
    assert diff["cost"] is None and diff["machines"]["cinnabar"]["cost"] is None
    assert "monthly cost" not in render_markdown(diff)


def web(host: Any, enabled: bool = True) -> Fleet:
    return Fleet(name="demo", machines=(Machine(name="web", host=host, enabled=enabled),))


@pytest.mark.parametrize(
    ("host", "message"),
    [
        (
            HetznerHost(server_type="cpx21", location="fsn1"),
            f"machine 'web': host.server_type 'cpx21' in 'fsn1' has no price in the catalog (prices taken "
            f"{prices_hetzner.taken()}); add it to fleet_sdk/catalog/prices_hetzner.py",
        ),
        (
            GcpHost(machine_type="t2a-standard-4", zone="us-east4-a"),
            "machine 'web': host.machine_type 't2a-standard-4' in region 'us-east4' (host.zone 'us-east4-a') has "
            f"no price in the catalog (prices taken {prices_gcp.taken()}); add it to fleet_sdk/catalog/prices_gcp.py",
        ),
        (
            GcpHost(machine_type="n1-standard-8", zone="us-east4-a", gpu_type="nvidia-tesla-v100", gpu_count=1),
            "machine 'web': host.gpu_type 'nvidia-tesla-v100' in region 'us-east4' (host.zone 'us-east4-a') has",
        ),
    ],
)
def test_a_declared_host_without_a_price_is_refused_naming_the_machine_and_field(host: Any, message: str) -> None:
    for enabled in (True, False):  # declared is enough: enabling it later must not be the surprise
        with pytest.raises(SpecError) as e:
            cost.fleet_cost(web(host, enabled))
        assert e.value.problems[0].startswith(message)


def test_fleet_plan_refuses_an_unpriced_host_as_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load = planning.load_stack

    def edited(*args: Any, **kwargs: Any) -> Any:
        config, settings, fleet = load(*args, **kwargs)
        host = HetznerHost(server_type="cpx21", location="fsn1", protect=True, dns=True)
        machines = tuple(m.model_copy(update={"host": host}) if m.name == "cinnabar" else m for m in fleet.machines)
        return config, settings, fleet.model_copy(update={"machines": machines})

    monkeypatch.setattr(planning, "load_stack", edited)
    monkeypatch.setattr(planning, "recorded_graph", lambda *a, **k: pytest.fail("recorded before refusing"))
    assert cli.main(["plan", "--project", str(PROJECT), "--stack", "prod"]) == 1
    err = capsys.readouterr().err
    assert "error: machine 'cinnabar': host.server_type 'cpx21' in 'fsn1' has no price in the catalog" in err
    assert "Traceback" not in err


def test_a_retired_server_type_is_left_out_of_the_total_saying_why() -> None:
    priced = cost.fleet_cost(web(HetznerHost(server_type="cx22", location="fsn1")))
    note = "Hetzner no longer sells cx22 (since 2026-01)"
    assert priced.machines == {"web": {"monthly": None, "currency": "EUR", "items": [], "note": note}}
    assert priced.monthly == {} and priced.taken is None
    assert cost.machine_line(priced.machines["web"]) == f"cost: unknown, left out of the total: {note}, no list price"
    assert cost.fleet_cost(web(HetznerHost(server_type="cx22", location="fsn1"), enabled=False)).machines == {
        "web": None
    }
    old = {"cost": {"monthly": {}}, "machines": {"web": {"cost": priced.machines["web"]}}}
    assert cost.machine_delta(old["machines"]["web"], old["machines"]["web"]) is None


def test_the_markdown_line_per_currency() -> None:
    line = cost.markdown_line
    assert line({"cost": None}) == "" and line({}) == ""
    both = {"old": {"EUR": 46.48}, "new": {"EUR": 59.98, "USD": 1.5}, "delta": {"EUR": 13.5, "USD": 1.5}}
    assert line({"cost": both}) == "monthly cost: +€13.50 (€46.48 → €59.98) · +$1.50 ($0.00 → $1.50)"
    down = {"old": {"EUR": 1046.48}, "new": {"EUR": 16.49}, "delta": {"EUR": -1029.99}}
    assert line({"cost": down}) == "monthly cost: -€1,029.99 (€1,046.48 → €16.49)"
    same = {"old": {"EUR": 46.48}, "new": {"EUR": 46.48}, "delta": {"EUR": 0.0}}
    assert line({"cost": same}) == "monthly cost: unchanged (€46.48)"


def test_the_hetzner_tables_price_server_types_where_the_catalog_sells_them() -> None:
    for table in prices_hetzner.TABLES:
        assert table.locations and set(table.locations) <= set(hetzner.LOCATIONS)
        for server_type, amount in table.monthly.items():
            assert hetzner.server_type(server_type) is not None, server_type
            assert set(table.locations) <= set(hetzner.locations_of(server_type)), server_type
            assert 0 < amount < 1000
    assert set(prices_hetzner.RETIRED) <= set(hetzner.SERVER_TYPES)
    # every type the catalog sells in the EU but for the retired ones and the AMD cpx types, which
    # Hetzner now sells in the US only
    unpriced = {
        name
        for name in hetzner.SERVER_TYPES
        for where in hetzner.EU
        if where in hetzner.locations_of(name) and prices_hetzner.server_monthly(name, where) is None
    }
    assert unpriced == set(prices_hetzner.RETIRED) | {"cpx11", "cpx21", "cpx31", "cpx41", "cpx51"}


def test_the_gcp_tables_cover_the_catalogs_regions_families_and_gpus() -> None:
    for table in (prices_gcp._RATES, prices_gcp._SHARED, prices_gcp._GPU, prices_gcp._DISK):
        assert all(set(regions) <= set(gcp.REGIONS) for regions in table.values())
    assert {c.split(":")[0] for c in prices_gcp._RATES} == set(gcp.FAMILIES)
    assert set(prices_gcp._SHARED) == set(gcp.SHARED_CORE) and set(prices_gcp._GPU) == set(gcp.GPU_COUNTS)
    for region in gcp.REGIONS:  # every region prices the cheap families, shared-core types and disks
        for machine_type in ("e2-standard-2", "n1-standard-1", "n2-standard-2", "e2-micro", "g2-standard-4"):
            assert prices_gcp.machine_hourly(machine_type, region) is not None, (machine_type, region)
        assert prices_gcp.disk_monthly_per_gb(prices_gcp.BOOT_DISK_TYPE, region) is not None
    # memory as Google sells it: a c3-highcpu has 2 GB a vCPU, n2-highmem-128 864 GB
    assert prices_gcp.machine_hourly("c3-highcpu-4", "us-central1").amount == pytest.approx(4 * 0.03465 + 8 * 0.003938)
    assert gcp.machine_type("n2-highmem-128")[0].memory_gb == 864
    assert prices_gcp.machine_hourly("c2-highmem-4", "us-central1") is None  # c2 comes in standard only
    assert prices_gcp.machine_hourly("e9-mega-2", "us-central1") is None
