"""Per-machine open ports: validated in the spec, a firewall of the machine's own in the graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sdk.errors import SpecError
from fleet_sdk.graph import deploy_fleet
from fleet_sdk.spec import Fleet, GcpHost, HetznerHost, Machine
from fleet_sdk.spec.hosts import parse_open_port
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import RecordedGraph, recorded_graph

HZ_FIREWALL = "hcloud:index/firewall:Firewall"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
WEB = ("tcp/80", "tcp/443")


def fleet() -> Fleet:
    return Fleet(
        name="fleet",
        machines=(
            Machine(name="cinnabar", host=HetznerHost(server_type="cx43", location="fsn1")),
            Machine(name="magnetite", host=HetznerHost(server_type="cx53", location="fsn1", open_ports=WEB)),
            Machine(name="galena", host=GcpHost(machine_type="e2-standard-8", zone="us-central1-b", open_ports=WEB)),
            Machine(name="scheelite", host=GcpHost(machine_type="e2-standard-8", zone="us-central1-b")),
        ),
    )


def record(f: Fleet, repo: Path, preview: bool = True) -> RecordedGraph:
    graph = recorded_graph(lambda: deploy_fleet(f, StackSettings(repo=repo)), preview=preview)
    assert graph.duplicate_urns == []
    return graph


def test_a_hetzner_machine_with_open_ports_gets_its_own_firewall(fleet_repo: Path) -> None:
    up = record(fleet(), fleet_repo, preview=False)
    shared = up.one(HZ_FIREWALL, "fleet")
    own = up.one(HZ_FIREWALL, "magnetite-ports")
    assert own.parent == up.one("fleet:index:Machine", "magnetite").urn
    assert own.inputs["name"] == "fleet-magnetite-ports"
    assert [(r["direction"], r["protocol"], r["port"]) for r in own.inputs["rules"]] == [
        ("in", "tcp", "80"),
        ("in", "tcp", "443"),
    ]
    assert all(r["sourceIps"] == ["0.0.0.0/0", "::/0"] for r in own.inputs["rules"])
    magnetite, cinnabar = (
        up.one("hcloud:index/server:Server", "magnetite"),
        up.one("hcloud:index/server:Server", "cinnabar"),
    )
    assert magnetite.inputs["firewallIds"] == [int(shared.id), int(own.id)]  # type: ignore[arg-type]
    assert own.urn in magnetite.dependencies
    # the others keep only the shared rules: nothing opens 80 or 443 for them
    assert cinnabar.inputs["firewallIds"] == [int(shared.id)]  # type: ignore[arg-type]
    assert sorted(r.name for r in up.of_type(HZ_FIREWALL)) == ["fleet", "magnetite-ports"]
    assert not any(r.get("port") in ("80", "443") for r in shared.inputs["rules"])


def test_a_gcp_machine_with_open_ports_gets_a_rule_on_its_own_tag(fleet_repo: Path) -> None:
    graph = record(fleet(), fleet_repo)
    rules = {r.name: r for r in graph.of_type(GCP_FIREWALL)}
    assert set(rules) == {"fleet-ssh", "fleet-zerotier", "galena-ports"}
    own = rules["galena-ports"]
    assert own.parent == graph.one("fleet:index:Machine", "galena").urn
    assert own.inputs["allows"] == [{"protocol": "tcp", "ports": ["80", "443"]}]
    assert own.inputs["targetTags"] == ["fleet-fleet-galena"] and own.inputs["name"] == "fleet-fleet-galena-ports"
    galena, scheelite = (
        graph.one("gcp:compute/instance:Instance", "galena"),
        graph.one("gcp:compute/instance:Instance", "scheelite"),
    )
    assert galena.inputs["tags"] == ["fleet-fleet", "fleet-fleet-galena"]
    assert scheelite.inputs["tags"] == ["fleet-fleet"]
    assert own.urn in galena.dependencies and own.urn not in scheelite.dependencies


def test_udp_and_ranges_are_grouped_per_protocol(fleet_repo: Path) -> None:
    host = GcpHost(
        machine_type="e2-standard-2", zone="us-central1-b", open_ports=("udp/51820", "tcp/80", "tcp/8000-8100")
    )
    hz = HetznerHost(server_type="cx22", location="fsn1", open_ports=("udp/51820", "tcp/8000-8100"))
    f = Fleet(name="lab", machines=(Machine(name="wg", host=host), Machine(name="hz", host=hz)))
    graph = record(f, fleet_repo)
    assert graph.one(GCP_FIREWALL, "wg-ports").inputs["allows"] == [
        {"protocol": "udp", "ports": ["51820"]},
        {"protocol": "tcp", "ports": ["80", "8000-8100"]},
    ]
    rules = graph.one(HZ_FIREWALL, "hz-ports").inputs["rules"]
    assert [(r["protocol"], r["port"], r["description"]) for r in rules] == [
        ("udp", "51820", "udp/51820"),
        ("tcp", "8000-8100", "tcp/8000-8100"),
    ]


def test_disabling_the_machine_removes_its_firewall(fleet_repo: Path) -> None:
    graph = record(fleet().with_enabled(("cinnabar", "scheelite")), fleet_repo)
    assert [r.name for r in graph.of_type(HZ_FIREWALL)] == ["fleet"]
    assert {r.name for r in graph.of_type(GCP_FIREWALL)} == {"fleet-ssh", "fleet-zerotier"}


@pytest.mark.parametrize(
    "entry",
    ["tcp/0", "tcp/65536", "icmp/1", "TCP/80", "tcp80", "tcp/80-70", "tcp/80-", "tcp/ 80", "udp/1-2-3", "tcp/http"],
)
@pytest.mark.parametrize("cloud", ["hetzner", "gcp"])
def test_bad_port_entries_are_refused_naming_the_machine(entry: str, cloud: str) -> None:
    host = (
        HetznerHost(server_type="cx22", location="fsn1", open_ports=("tcp/22", entry))
        if cloud == "hetzner"
        else GcpHost(machine_type="e2-standard-2", zone="us-central1-b", open_ports=("tcp/22", entry))
    )
    with pytest.raises(SpecError) as caught:
        Machine(name="web", host=host)
    assert caught.value.problems == [
        f"machine 'web': host.open_ports: {entry!r} is not <tcp|udp>/<port> or <tcp|udp>/<first>-<last> "
        "with ports 1-65535, e.g. tcp/443 or udp/60000-61000"
    ]


def test_a_port_listed_twice_is_refused() -> None:
    with pytest.raises(SpecError, match="machine 'web': host.open_ports: 'tcp/80' is listed twice"):
        Machine(name="web", host=HetznerHost(server_type="cx22", location="fsn1", open_ports=("tcp/80", "tcp/80")))


def test_port_entries_parse() -> None:
    assert parse_open_port("tcp/80") == ("tcp", 80, 80)
    assert parse_open_port("udp/60000-61000") == ("udp", 60000, 61000)
    assert parse_open_port("tcp/1-65535") == ("tcp", 1, 65535)
    assert parse_open_port("tcp/5-5") == ("tcp", 5, 5)
    assert parse_open_port("udp/0") is None
