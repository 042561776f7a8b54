"""`fleet inventory export`: the fleet as clan's inventory.json (reference/clan.md §7)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.cli import main
from fleet_sdk.errors import SpecError
from fleet_sdk.spec import Fleet, Machine, Role, ServiceInstance
from fleet_sdk.stack import inventory

from .conftest import PROJECT, prod_fleet


@pytest.fixture(scope="module")
def exported() -> dict[str, Any]:
    return inventory.inventory(prod_fleet())


def export_cli(repo: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["inventory", "export", "--project", str(PROJECT), "--stack", "prod", "--repo", str(repo), *args])
    out, err = capsys.readouterr()
    return code, out, err


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def staged(repo: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "diff", "--cached", "--name-only"], check=True, capture_output=True)
    return out.stdout.decode().split()


def test_prod_machines_as_clans_inventory_declares_them(exported: dict[str, Any]) -> None:
    machines = exported["machines"]
    assert sorted(machines) == sorted(m.name for m in prod_fleet().machines)
    # as the user's modules/clan/inventory/machines.nix has them, tags in their order
    assert machines["cinnabar"] == {
        "name": "cinnabar",
        "tags": ["nixos", "cloud", "hetzner", "controller"],
        "machineClass": "nixos",
        "description": "Primary VPS, zerotier controller",
        "deploy": {"targetHost": "root@cinnabar.zt"},
    }
    assert machines["scheelite"]["tags"] == ["nixos", "cloud", "gcp", "gpu", "peer"]
    assert machines["electrum"]["machineClass"] == "nixos"  # disabled: still a machine of the clan
    assert machines["stibnite"]["machineClass"] == "darwin"
    assert machines["stibnite"]["deploy"] == {"targetHost": "crs58@stibnite.zt"}
    assert machines["stibnite"]["description"] == "crs58's primary workstation, deployment controller"
    assert "meta" not in exported  # the flake sets clan.meta in Nix


def test_the_zerotier_instance_with_its_controller_and_peer_roles(exported: dict[str, Any]) -> None:
    assert list(exported["instances"]) == ["zerotier"]
    zt = exported["instances"]["zerotier"]
    assert zt["module"] == {"name": "zerotier", "input": "clan-core"}
    assert set(zt["roles"]) == {"controller", "peer"}
    assert zt["roles"]["controller"]["machines"] == {"cinnabar": {}}
    assert zt["roles"]["peer"] == {"tags": {"peer": {}}}  # clan resolves the tag itself
    ips = zt["roles"]["controller"]["settings"]["allowedIps"]
    assert len(ips) == 5 and "fddb:4344:343b:14b9:399:930e:e971:d9e0" in ips


def test_an_instance_of_clan_cores_modules_names_no_input() -> None:
    fleet = Fleet(
        name="lab",
        machines=(Machine(name="a"),),
        instances=(ServiceInstance(name="ssh", module="sshd", roles={"server": Role(machines=("a",))}),),
    )
    assert inventory.inventory(fleet)["instances"] == {
        "ssh": {"module": {"name": "sshd"}, "roles": {"server": {"machines": {"a": {}}}}}
    }
    bare = inventory.inventory(fleet)["machines"]["a"]
    assert bare == {"name": "a", "tags": [], "machineClass": "nixos"}  # no description, no deploy


def test_settings_that_are_not_json_data_are_refused_naming_the_role() -> None:
    fleet = Fleet(
        name="lab",
        machines=(Machine(name="a"),),
        instances=(
            ServiceInstance(
                name="ssh", module="sshd", roles={"server": Role(machines=("a",), settings={"x": float("nan")})}
            ),
        ),
    )
    with pytest.raises(SpecError, match=r"instance 'ssh': roles.server.settings: not JSON data"):
        inventory.inventory(fleet)


def test_canonical_bytes(exported: dict[str, Any]) -> None:
    text = inventory.render(exported)
    assert text == json.dumps(exported, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text.splitlines()[1] == '  "instances": {'  # sorted, 2-space indent
    assert inventory.render(json.loads(text)) == text


def test_export_prints_by_default_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = git_repo(tmp_path / "repo")
    code, out, _ = export_cli(repo, capsys=capsys)
    assert code == 0
    assert out == inventory.render(inventory.inventory(prod_fleet()))
    assert not (repo / "inventory.json").exists()


def test_write_is_atomic_only_when_changed_and_git_added(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = git_repo(tmp_path / "repo")
    path = repo / "inventory.json"
    code, out, _ = export_cli(repo, "--write", capsys=capsys)
    assert (code, out) == (0, f"wrote: {path}\n")
    assert json.loads(path.read_text())["machines"]["cinnabar"]["tags"][0] == "nixos"
    assert staged(repo) == ["inventory.json"]
    before = path.stat()
    code, out, _ = export_cli(repo, "--write", capsys=capsys)
    assert (code, out) == (0, f"unchanged: {path}\n")
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten
    assert [p.name for p in repo.iterdir() if p.name.startswith(".inventory")] == []  # no temp file left


def test_clans_own_keys_are_kept_and_gone_machines_dropped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = git_repo(tmp_path / "repo")
    # as `clan machines install` leaves it (no final newline), plus a machine the fleet no longer has
    old = {
        "machines": {
            "cinnabar": {"installedAt": 1763061719, "deploy": {"buildHost": "root@builder", "targetHost": "old"}},
            "oldbox": {"installedAt": 1},
        },
        "meta": {"description": "written by clan's UI"},
    }
    (repo / "inventory.json").write_text(json.dumps(old, indent=2))
    assert export_cli(repo, "--write", capsys=capsys)[0] == 0
    doc = json.loads((repo / "inventory.json").read_text())
    assert doc["machines"]["cinnabar"]["installedAt"] == 1763061719
    assert doc["machines"]["cinnabar"]["deploy"] == {"buildHost": "root@builder", "targetHost": "root@cinnabar.zt"}
    assert "oldbox" not in doc["machines"]
    assert doc["meta"] == old["meta"]
    assert "installedAt" not in doc["machines"]["magnetite"]


def test_output_file_and_write_are_exclusive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = git_repo(tmp_path / "repo")
    target = repo / "clan" / "inventory.json"
    code, out, _ = export_cli(repo, "-o", str(target), capsys=capsys)
    assert (code, out) == (0, f"wrote: {target}\n")
    assert target.read_text() == inventory.render(inventory.inventory(prod_fleet()))
    assert staged(repo) == ["clan/inventory.json"]
    with pytest.raises(SystemExit):
        export_cli(repo, "-o", str(target), "--write", capsys=capsys)


def test_a_damaged_inventory_is_refused_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "inventory.json").write_text('{"machines": ')
    code, out, err = export_cli(repo, "--write", capsys=capsys)
    assert code == 1 and out == ""
    assert err.startswith(f"error: {repo / 'inventory.json'}: not JSON") and "Traceback" not in err
    assert (repo / "inventory.json").read_text() == '{"machines": '  # left as it was
    (repo / "inventory.json").write_text('{"machines": {"cinnabar": []}}')
    code, _, err = export_cli(repo, capsys=capsys)
    assert code == 1 and "machines.cinnabar: give an object" in err
