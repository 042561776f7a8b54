"""`fleet plan` end to end: the project's real stack, and throwaway projects with bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_sdk.cli import main
from fleet_sdk.errors import DuplicateUrnError, SpecError
from fleet_sdk.review import plan as planning

from .conftest import PROJECT, make_deploy_key


def fleet_cli(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet_sdk", *args], check=False, capture_output=True, text=True, cwd=cwd
    )


def test_plan_json_is_the_documented_stable_document(fleet_repo: Path) -> None:
    first = fleet_cli("plan", "--stack", "prod", "--json", "--repo", str(fleet_repo))
    assert first.returncode == 0, first.stderr
    second = fleet_cli("plan", "--stack", "prod", "--json", "--repo", str(fleet_repo))
    assert first.stdout == second.stdout  # stable: no timestamps, sorted
    doc = json.loads(first.stdout)
    assert set(doc) == {"schema", "project", "stack", "machines", "resources", "outputs", "cost"}
    assert doc["schema"] == "fleet-plan/2"
    assert set(doc["machines"]["cinnabar"]) == {
        *("class", "enabled", "tags", "target_host", "resources", "system", "install"),
        *("disko", "generators", "zerotier", "cost"),
    }
    assert set(doc["machines"]["argentum"]) == set(doc["machines"]["cinnabar"]) - {"install"}
    assert (doc["project"], doc["stack"]) == ("fleet", "prod")
    assert doc["machines"]["scheelite"]["class"] == "nixos" and doc["machines"]["argentum"]["class"] == "darwin"
    assert doc["machines"]["cinnabar"]["tags"] == ["cloud", "controller", "hetzner", "nixos"]
    by_urn = {r["urn"]: r for r in doc["resources"]}
    assert doc["machines"]["cinnabar"]["target_host"] == "root@cinnabar.zt"
    assert doc["machines"]["argentum"]["target_host"] == "cameron@argentum.zt"
    for name, machine in doc["machines"].items():
        for urn in machine["resources"]:
            assert by_urn[urn]["machine"] == name
    server = next(r for r in doc["resources"] if r["type"] == "hcloud:index/server:Server" and r["name"] == "cinnabar")
    assert set(server) == {
        "urn",
        "type",
        "name",
        "parent",
        "machine",
        "subject",
        "dependencies",
        "property_dependencies",
        "inputs",
        "options",
    }
    assert server["options"]["protect"] is True and server["options"]["ignore_changes"] == [
        "sshKeys",
        "userData",
    ]
    assert server["inputs"]["serverType"] == "cx43"
    assert len(server["dependencies"]) == 2 and all(d in by_urn for d in server["dependencies"])
    assert doc["outputs"]["machines"]["magnetite"] == {
        "ipv4": "<computed>",
        "ipv6": "<computed>",
        "install": "<computed>",
        "host_key_fingerprint": "<computed>",
        "reinstall_required": False,
    }
    assert first.stderr == ""  # the deploy key exists: nothing to warn about


def test_plan_text_lists_machines_and_dependencies(fleet_repo: Path) -> None:
    out = fleet_cli("plan", "--repo", str(fleet_repo))
    assert out.returncode == 0, out.stderr
    assert "fleet/prod: 10 machines (2 with cloud resources)" in out.stdout
    assert "after hcloud:index/firewall:Firewall::fleet, hcloud:index/sshKey:SshKey::fleet-deploy" in out.stdout
    assert "scheelite  nixos  gcp n1-standard-8 us-central1-f +1x nvidia-tesla-t4" in out.stdout


def test_plan_says_when_the_deploy_key_is_missing(tmp_path: Path) -> None:
    # a fleet without a deploy-key generator needs the key file in the repository
    project = write_project(
        tmp_path / "p", 'Machine(name="web", host=HetznerHost(server_type="cx22", location="fsn1"))'
    )
    out = fleet_cli("plan", "--json", cwd=project)
    assert out.returncode == 0
    assert "deploy key is not generated yet" in out.stderr and "fleet vars generate" in out.stderr


def test_config_override_disables_machines(fleet_repo: Path) -> None:
    out = fleet_cli("plan", "--json", "--repo", str(fleet_repo), "-c", 'fleet:enabled=["galena"]')
    doc = json.loads(out.stdout)
    assert [n for n, m in doc["machines"].items() if m["enabled"]] == ["galena"]
    assert not any(r["type"].startswith("hcloud:") for r in doc["resources"])


BAD_STACKS = {
    "hostname": ('Machine(name="Web_1")', ["machine 'Web_1'", "name:"]),
    "duplicate": ('Machine(name="a"), Machine(name="a")', ["machine 'a'", "declared twice"]),
    "server-type": (
        'Machine(name="a", host=HetznerHost(server_type="cx99", location="fsn1"))',
        ["machine 'a'", "host.server_type", "'cx99'"],
    ),
    "location": (
        'Machine(name="a", host=HetznerHost(server_type="cx43", location="mars1"))',
        ["machine 'a'", "host.location"],
    ),
    "zone": (
        'Machine(name="a", host=GcpHost(machine_type="e2-standard-2", zone="moon-1a"))',
        ["machine 'a'", "host.zone"],
    ),
    "gpu": (
        'Machine(name="a", host=GcpHost(machine_type="e2-standard-8", zone="us-central1-b", '
        'gpu_type="nvidia-tesla-t4", gpu_count=1))',
        ["machine 'a'", "host.gpu_type", "cannot take a GPU"],
    ),
    "role-machine": ('Machine(name="a"),), instances=(ZT(machines=("ghost",))', ["instance 'zt'", "'ghost'"]),
    "role-tag": ('Machine(name="a"),), instances=(ZT(tags=("nobody",))', ["instance 'zt'", "'nobody'"]),
    "wrong-type": ('Machine(name="a", tags="x")', ["Machine: tags", "tuple"]),
    "target-empty-user": ('Machine(name="a", target_host="@a.zt")', ["machine 'a'", "target_host", "empty user"]),
    "target-shell": (
        'Machine(name="a", target_host="root@a.zt;reboot")',
        ["machine 'a'", "target_host", "not a host name or IP address"],
    ),
    "target-port": ('Machine(name="a", target_host="root@a.zt:99999")', ["machine 'a'", "port '99999'"]),
    "target-option": ('Machine(name="a", target_host="-oProxyCommand=x")', ["machine 'a'", "target_host"]),
    "zerotier-ip-v4": (
        'Machine(name="a"),), instances=(ServiceInstance(name="zt", module="zerotier", '
        'roles={"controller": Role(machines=("a",), settings={"allowedIps": ["10.1.2.3"]})})',
        ["instance 'zt'", "allowedIps", "'10.1.2.3' is not an IPv6 address"],
    ),
}


def write_project(root: Path, machines: str) -> Path:
    (root / "stacks").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (root / "Pulumi.dev.yaml").write_text("config:\n  fleet:flake: .\n")
    (root / "stacks" / "dev.py").write_text(
        "from fleet_sdk.spec import *\n"
        "def ZT(**kw):\n"
        "    return ServiceInstance(name='zt', module='zerotier', roles={'peer': Role(**kw)})\n"
        "def build(settings):\n"
        f"    return Fleet(name='demo', machines=({machines},))\n"
    )
    return root


@pytest.mark.parametrize("case", sorted(BAD_STACKS))
def test_bad_input_is_refused_before_any_resource(case: str, tmp_path: Path, monkeypatch, capsys) -> None:
    machines, expected = BAD_STACKS[case]
    project = write_project(tmp_path / "project", machines)

    def no_graph(*args: object, **kwargs: object) -> None:
        raise AssertionError("a resource was about to be registered")

    monkeypatch.setattr(planning, "recorded_graph", no_graph)
    assert main(["plan", "--project", str(project), "--stack", "dev"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    for part in expected:
        assert part in err, f"{part!r} not in {err!r}"
    assert "Traceback" not in err


def test_cli_prints_no_traceback_unless_debug(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", BAD_STACKS["hostname"][0])
    out = fleet_cli("plan", "--stack", "dev", cwd=project)
    assert out.returncode == 1 and "Traceback" not in out.stderr and "machine 'Web_1'" in out.stderr
    debug = fleet_cli("plan", "--stack", "dev", "--debug", cwd=project)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "SpecError" in debug.stderr


def test_unknown_stack_and_missing_project(tmp_path: Path) -> None:
    out = fleet_cli("plan", "--stack", "staging")
    assert out.returncode == 1 and "Pulumi.staging.yaml" in out.stderr
    out = fleet_cli("plan", cwd=tmp_path)
    assert out.returncode == 1 and "no Pulumi.yaml" in out.stderr


def test_make_plan_refuses_before_recording(tmp_path: Path, monkeypatch) -> None:
    project = write_project(tmp_path / "p", BAD_STACKS["duplicate"][0])
    monkeypatch.setattr(planning, "recorded_graph", lambda *a, **k: pytest.fail("recorded"))
    with pytest.raises(SpecError):
        planning.make_plan(project, "dev")


def test_a_consumer_project_plans_with_its_own_stack(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "consumer", 'Machine(name="web", host=HetznerHost(server_type="cpx21", location="ash"))'
    )
    make_deploy_key(project)
    out = fleet_cli("plan", "--json", cwd=project)  # the only stack of the project
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["project"] == "demo" and doc["stack"] == "dev"
    assert any(r["urn"].startswith("urn:pulumi:dev::demo::") and r["name"] == "web" for r in doc["resources"])
    shutil.rmtree(project)


def test_a_urn_registered_twice_is_refused_naming_it(tmp_path: Path, monkeypatch, capsys) -> None:
    # the mock runtime accepts two resources under one URN; `pulumi up` would not
    import pulumi

    project = write_project(tmp_path / "p", 'Machine(name="web")')
    record = planning.recorded_graph

    def with_twins(program, **kwargs):
        def both() -> None:
            program()
            for _ in range(2):
                pulumi.ComponentResource("test:index:Twin", "twin")

        return record(both, **kwargs)

    monkeypatch.setattr(planning, "recorded_graph", with_twins)
    urn = "urn:pulumi:dev::demo::test:index:Twin::twin"
    with pytest.raises(DuplicateUrnError) as e:
        planning.make_plan(project, "dev")
    assert e.value.urns == [urn]
    assert f"URNs registered twice: {urn};" in str(e.value) and "rename one of them" in str(e.value)
    assert main(["plan", "--project", str(project), "--stack", "dev"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: URNs registered twice: {urn}") and "Traceback" not in err
