"""Cloudflare A and AAAA records for Hetzner machines with dns=True, under Pulumi's mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sdk.cli import main
from fleet_sdk.errors import ConfigError
from fleet_sdk.graph import deploy_fleet
from fleet_sdk.graph.offline import mock_zone_id
from fleet_sdk.review import plan as planning
from fleet_sdk.spec import Fleet, HetznerHost, Machine
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import COMPUTED, RecordedGraph, recorded_graph

RECORD = "cloudflare:index/dnsRecord:DnsRecord"
SERVER = "hcloud:index/server:Server"
ZONE = "example.net"


def fleet(*dns: str, enabled: tuple[str, ...] | None = None) -> Fleet:
    machines = tuple(
        Machine(name=name, host=HetznerHost(server_type="cx22", location="fsn1", dns=name in dns))
        for name in ("cinnabar", "electrum", "magnetite")
    )
    return Fleet(name="fleet", machines=machines).with_enabled(enabled)


def record(f: Fleet, repo: Path, preview: bool = True, zone: str | None = ZONE) -> RecordedGraph:
    values = {"fleet:cloudflareZone": zone} if zone else {}
    settings = StackSettings.from_values(values, repo)
    graph = recorded_graph(lambda: deploy_fleet(f, settings), preview=preview)
    assert graph.duplicate_urns == []
    return graph


def test_each_dns_machine_gets_an_a_and_aaaa_record_of_its_server(fleet_repo: Path) -> None:
    up = record(fleet("cinnabar", "magnetite"), fleet_repo, preview=False)
    assert sorted(r.name for r in up.of_type(RECORD)) == [
        "cinnabar-a",
        "cinnabar-aaaa",
        "magnetite-a",
        "magnetite-aaaa",
    ]
    for name in ("cinnabar", "magnetite"):
        server = up.one(SERVER, name)
        machine = up.one("fleet:index:Machine", name)
        for kind, address in (("A", "ipv4Address"), ("AAAA", "ipv6Address")):
            rec = up.one(RECORD, f"{name}-{kind.lower()}")
            assert rec.inputs == {
                "zoneId": mock_zone_id(ZONE),  # looked up by name
                "name": f"{name}.{ZONE}",  # fully qualified: Cloudflare stores it so
                "type": kind,
                "content": server.state[address],
                "ttl": 1,
                "proxied": False,
            }
            # the record takes the server's address, so it waits for the server
            assert server.urn in rec.dependencies
            assert rec.parent == machine.urn
    assert up.of_type("fleet:cloudflare:Zone")[0].name == ZONE


def test_preview_offline_shows_addresses_and_zone_id_as_computed(fleet_repo: Path) -> None:
    preview = record(fleet("cinnabar"), fleet_repo)
    rec = preview.one(RECORD, "cinnabar-a")
    assert rec.inputs["content"] == COMPUTED and rec.inputs["zoneId"] == COMPUTED
    up = record(fleet("cinnabar"), fleet_repo, preview=False)
    assert sorted(r.urn for r in preview.resources) == sorted(r.urn for r in up.resources)
    for before in preview.resources:
        assert before.dependencies == up.by_urn()[before.urn].dependencies


def test_disabling_a_machine_removes_its_records_and_the_last_one_the_zone(fleet_repo: Path) -> None:
    both = record(fleet("cinnabar", "magnetite"), fleet_repo)
    fewer = record(fleet("cinnabar", "magnetite", enabled=("cinnabar", "electrum")), fleet_repo)
    removed = {r.urn for r in both.resources} - {r.urn for r in fewer.resources}
    magnetite = both.one("fleet:index:Machine", "magnetite").urn
    assert removed == {r.urn for r in both.descendants(magnetite)}
    assert {r.name for r in fewer.of_type(RECORD)} == {"cinnabar-a", "cinnabar-aaaa"}
    none = record(fleet("cinnabar", "magnetite", enabled=("electrum",)), fleet_repo)
    assert not any(r.type.startswith(("cloudflare:", "fleet:cloudflare:")) for r in none.resources)


def test_without_dns_machines_nothing_of_cloudflare_is_declared(fleet_repo: Path) -> None:
    graph = record(fleet(), fleet_repo, zone=None)
    assert not any("cloudflare" in r.type for r in graph.resources)


def test_dns_without_a_zone_is_refused_naming_the_machine_and_key(fleet_repo: Path) -> None:
    settings = StackSettings.from_values({}, fleet_repo)
    with pytest.raises(ConfigError, match=r"machine 'magnetite': host.dns=True .* fleet:cloudflareZone"):
        settings.check(fleet("magnetite"))
    with pytest.raises(ConfigError, match=r"machines 'cinnabar', 'magnetite'"):
        recorded_graph(lambda: deploy_fleet(fleet("cinnabar", "magnetite"), settings))


@pytest.mark.parametrize("zone", ["example", "exa mple.net", "-bad.net", "https://example.net"])
def test_a_malformed_zone_is_refused(zone: str, fleet_repo: Path) -> None:
    with pytest.raises(ConfigError, match="fleet:cloudflareZone"):
        StackSettings.from_values({"fleet:cloudflareZone": zone}, fleet_repo)


def test_a_zone_is_written_as_cloudflare_names_it(fleet_repo: Path) -> None:
    assert StackSettings.from_values({"fleet:cloudflareZone": "Example.NET."}, fleet_repo).cloudflare_zone == ZONE


def test_fleet_plan_refuses_dns_without_a_zone_before_recording(tmp_path: Path, monkeypatch, capsys) -> None:
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (project / "Pulumi.dev.yaml").write_text("config:\n  fleet:flake: .\n")
    (project / "stacks" / "dev.py").write_text(
        "from fleet_sdk.spec import *\n"
        "def build(settings):\n"
        "    return Fleet(name='demo', machines=(\n"
        "        Machine(name='web', host=HetznerHost(server_type='cx22', location='fsn1', dns=True)),))\n"
    )
    monkeypatch.setattr(
        planning, "recorded_graph", lambda *a, **k: pytest.fail("a resource was about to be registered")
    )
    assert main(["plan", "--project", str(project), "--stack", "dev"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: machine 'web': host.dns=True") and "fleet:cloudflareZone" in err
    assert "Traceback" not in err
