"""The prod stack describes the user's fleet as it runs: machines, tags, descriptions, deploy targets,
the enabled set and GCP project of Pulumi.prod.yaml, ZeroTier members, and what disabling a machine
does to the plan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from fleet_sdk.zerotier import service as zerotier

from .cloud_fixtures import PLAINTEXTS
from .conftest import PROJECT, prod_fleet

MACHINES = {
    # name: (class, tags, deploy target)
    "cinnabar": ("nixos", ["cloud", "controller", "hetzner", "nixos"], "root@cinnabar.zt"),
    "electrum": ("nixos", ["cloud", "hetzner", "nixos", "peer"], "root@electrum.zt"),
    "magnetite": ("nixos", ["cloud", "hetzner", "nixos", "peer"], "root@magnetite.zt"),
    "galena": ("nixos", ["cloud", "gcp", "nixos", "peer"], "root@galena.zt"),
    "scheelite": ("nixos", ["cloud", "gcp", "gpu", "nixos", "peer"], "root@scheelite.zt"),
    "pyrite": ("nixos", ["laptop", "nixos", "peer"], "root@pyrite.zt"),
    "blackphos": ("darwin", ["darwin", "fleet", "laptop", "workstation"], "crs58@blackphos.zt"),
    "stibnite": ("darwin", ["controller", "darwin", "laptop", "workstation"], "crs58@stibnite.zt"),
    "rosegold": ("darwin", ["darwin", "fleet", "laptop", "workstation"], "cameron@rosegold.zt"),
    "argentum": ("darwin", ["darwin", "fleet", "laptop", "workstation"], "cameron@argentum.zt"),
}
# the user runs electrum (a test VM) and the GCP nodes switched off
ENABLED = ["cinnabar", "magnetite", "pyrite", "blackphos", "stibnite", "rosegold", "argentum"]
SERVER = "hcloud:index/server:Server"


def plan(repo: Path, *config: str) -> dict:
    overrides = [arg for c in config for arg in ("-c", c)]
    argv = [sys.executable, "-m", "fleet_sdk", "plan", "--stack", "prod", "--json", "--repo", str(repo), *overrides]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=PROJECT, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_plan_has_the_users_machines_tags_targets_and_enabled_set(fleet_repo: Path) -> None:
    doc = plan(fleet_repo)
    got = {n: (m["class"], m["tags"], m["target_host"]) for n, m in doc["machines"].items()}
    assert got == MACHINES
    assert sorted(n for n, m in doc["machines"].items() if m["enabled"]) == sorted(ENABLED)
    servers = sorted(r["name"] for r in doc["resources"] if r["type"] == SERVER)
    assert servers == ["cinnabar", "magnetite"]
    assert not any(r["type"].startswith("gcp:") for r in doc["resources"])  # galena, scheelite are off
    fleet = prod_fleet()
    assert fleet.machine("pyrite").host is None  # bare metal: deployed over SSH, no cloud resources
    assert fleet.machine("electrum").description == "Secondary test VM, zerotier peer"
    config = yaml.safe_load((PROJECT / "Pulumi.prod.yaml").read_text())["config"]
    assert config["gcp:project"] == "pyro-284215" and config["gcp:zone"] == "us-central1-b"


def test_zerotier_is_controlled_by_cinnabar_with_the_workstations_and_phone_by_address() -> None:
    fleet = prod_fleet()
    assert fleet.members("zerotier", "controller") == ["cinnabar"]
    assert fleet.members("zerotier", "peer") == ["electrum", "galena", "magnetite", "pyrite", "scheelite"]
    external = zerotier.external_members(fleet.instance("zerotier"))
    assert set(external) == {"0ee971d9e0", "2419d93451", "f754d5ad7e", "1534310ee8", "9fc45d577c"}
    assert all(zerotier.network_of_address(ip) == "db4344343b14b903" for ip in external.values() if ip)
    # each machine declares only its own identity
    for m in fleet.machines:
        identities = [g.name for g in fleet.generators_of(m) if g.name.startswith("zerotier-identity-")]
        assert identities in ([f"zerotier-identity-{m.name}"], [])


def test_enabling_and_disabling_electrum_by_config_nothing_protects_it(fleet_repo: Path) -> None:
    on = plan(fleet_repo, f"fleet:enabled={json.dumps([*ENABLED, 'electrum'])}")
    electrum = [r for r in on["resources"] if r["urn"] in on["machines"]["electrum"]["resources"]]
    assert SERVER in {r["type"] for r in electrum}
    # a protected resource would make `pulumi up` refuse to delete it when it is switched off
    assert all(not r["options"].get("protect") for r in electrum)
    server = next(r for r in electrum if r["type"] == SERVER)
    assert server["inputs"]["deleteProtection"] is False and server["inputs"]["rebuildProtection"] is False
    off = plan(fleet_repo)
    cloud = {r["urn"] for r in electrum if r["type"] != "fleet:index:Machine" and "vars" not in r["name"]}
    assert cloud and not cloud & {r["urn"] for r in off["resources"]}
    # the production servers stay protected
    servers = {r["name"]: r for r in off["resources"] if r["type"] == SERVER}
    assert servers["cinnabar"]["options"]["protect"] and servers["magnetite"]["options"]["protect"]


def test_dns_records_wait_for_their_servers_and_tokens_stay_secret(fleet_repo: Path) -> None:
    doc = plan(fleet_repo)
    text = json.dumps(doc)
    for plaintext in PLAINTEXTS:
        assert plaintext not in text
    by_urn = {r["urn"]: r for r in doc["resources"]}
    providers = {r["type"]: r for r in doc["resources"] if r["type"].startswith("pulumi:providers:")}
    assert providers["pulumi:providers:hcloud"]["inputs"]["token"] == "[secret]"
    assert providers["pulumi:providers:cloudflare"]["inputs"]["apiToken"] == "[secret]"
    records = [r for r in doc["resources"] if r["type"] == "cloudflare:index/dnsRecord:DnsRecord"]
    assert sorted(r["name"] for r in records) == ["cinnabar-a", "cinnabar-aaaa", "magnetite-a", "magnetite-aaaa"]
    for record in records:
        machine = record["machine"]
        server = next(u for u in doc["machines"][machine]["resources"] if by_urn[u]["type"] == SERVER)
        assert server in record["dependencies"]
        assert record["inputs"]["name"] == f"{machine}.scientistexperience.net"
        assert record["inputs"]["ttl"] == 1 and record["inputs"]["proxied"] is False
    firewall = next(r for r in doc["resources"] if r["name"] == "magnetite-ports")
    assert {(rule["protocol"], rule["port"]) for rule in firewall["inputs"]["rules"]} == {("tcp", "80"), ("tcp", "443")}
    assert not any(r["name"] == "cinnabar-ports" for r in doc["resources"])
