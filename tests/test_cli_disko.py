"""`fleet disko render|check` on the project's prod stack and on throwaway projects."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from fleet_sdk.cli import main
from fleet_sdk.disko import DiskLayout

from .conftest import PROJECT, prod_fleet
from .test_cli_plan import write_project


def test_render_prints_the_canonical_disko_json(capsys) -> None:
    assert main(["disko", "render", "cinnabar", "--project", str(PROJECT), "--stack", "prod"]) == 0
    out = capsys.readouterr().out
    assert out == prod_fleet().machine("cinnabar").disks.render()  # type: ignore[union-attr]
    assert out.endswith("}\n") and out == json.dumps(json.loads(out), indent=2, sort_keys=True) + "\n"
    layout = DiskLayout.from_disko(json.loads(out))
    assert [p.type_code for p in layout.partition_plan("main", 160 * 10**9)] == ["EF02", "8300", "8300"]


def test_render_write_is_atomic_idempotent_and_git_added(tmp_path: Path, capsys) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    args = [
        "disko",
        "render",
        "electrum",
        "--write",
        "--project",
        str(PROJECT),
        "--stack",
        "prod",
        "--repo",
        str(repo),
    ]
    assert main(args) == 0
    target = repo / "machines/electrum/disko.json"
    assert "wrote" in capsys.readouterr().out and target.is_file()
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True, check=True
    )
    assert status.stdout.strip() == "A  machines/electrum/disko.json"
    mtime = target.stat().st_mtime_ns
    assert main(args) == 0
    assert "unchanged" in capsys.readouterr().out and target.stat().st_mtime_ns == mtime


def test_check_shows_every_machine_with_its_table(capsys) -> None:
    assert main(["disko", "check", "--project", str(PROJECT), "--stack", "prod"]) == 0
    out = capsys.readouterr().out
    assert "cinnabar (cx43, bios boot, 160 GB): ok" in out
    assert "scheelite (n1-standard-8, uefi boot, 100 GB): ok" in out
    # the user's names: the labels cinnabar's installed disk already has
    assert "main 1 boot       EF02  disk-main-boot       sectors 2048-4095" in out
    assert "disk-main-grub" in out and "disk-primary-ESP" in out
    assert "stibnite" not in out  # darwin: no layout


def test_layout_that_cannot_boot_or_fit_is_refused_naming_machine_type_and_partition(tmp_path: Path, capsys) -> None:
    wrong_boot = (
        'Machine(name="web", host=HetznerHost(server_type="cx22", location="fsn1"), disks=zfs_root(boot="uefi"))'
    )
    project = write_project(tmp_path / "p1", wrong_boot)
    stack = project / "stacks" / "dev.py"
    stack.write_text("from fleet_sdk.disko import zfs_root\n" + stack.read_text())
    assert main(["disko", "check", "--project", str(project)]) == 1
    err = capsys.readouterr().err
    assert "machine 'web'" in err and "cx22 (bios boot, 40 GB disk)" in err and "EF02" in err
    assert main(["plan", "--project", str(project)]) == 1
    assert "machine 'web'" in capsys.readouterr().err

    too_big = (
        'Machine(name="web", host=HetznerHost(server_type="cx22", location="fsn1"), disks={"disk": {"main": '
        '{"device": "/dev/sda", "content": {"type": "gpt", "partitions": {"bios": {"size": "1M", "type": "EF02"}, '
        '"data": {"size": "50G", "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/data"}}, '
        '"root": {"size": "100%", "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/"}}}}}}})'
    )
    project = write_project(tmp_path / "p2", too_big)
    assert main(["disko", "check", "--project", str(project)]) == 1
    err = capsys.readouterr().err
    assert "disk.main.content.partitions.data: does not fit on the 40 GB disk" in err and "cx22" in err


def test_render_of_a_machine_without_layout(capsys) -> None:
    assert main(["disko", "render", "stibnite", "--project", str(PROJECT), "--stack", "prod"]) == 1
    assert "machine 'stibnite': disks: no layout" in capsys.readouterr().err
