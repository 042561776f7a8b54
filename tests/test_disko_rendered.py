"""machines/<m>/disko.json, the file the install reads, is checked against the stack's layout and the
machine's host by `fleet disko check` and `fleet plan`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet_sdk.cli import main

from .conftest import PROJECT, prod_fleet


def written(repo: Path, text: str | bytes, machine: str = "cinnabar") -> Path:
    path = repo / "machines" / machine / "disko.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def run(repo: Path, *args: str) -> int:
    return main([*args, "--project", str(PROJECT), "--stack", "prod", "--repo", str(repo)])


def cinnabar() -> str:
    disks = prod_fleet().machine("cinnabar").disks
    assert disks is not None
    return disks.render()


def test_the_rendered_file_passes(fleet_repo: Path, capsys) -> None:
    written(fleet_repo, cinnabar())
    assert run(fleet_repo, "disko", "check") == 0
    assert "cinnabar (cx43, bios boot, 160 GB): ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda text: "garbage{", "machines/cinnabar/disko.json: cannot be read as JSON"),
        (lambda text: b"\xff" + text.encode(), "cannot be read as JSON ('utf-8' codec can't decode"),
        (lambda text: json.dumps({"disk": {"main": {"type": "disk"}}}), "not a disko layout"),
        (lambda text: text.replace('"grub"', '"boot2"'), "differs from the stack's layout"),
        # valid disko, but it cannot boot the BIOS host: no EF02 partition left
        (lambda text: text.replace('"EF02"', '"8300"'), "EF02"),
    ],
)
def test_a_hand_edited_or_garbage_file_is_refused_by_check_and_plan(fleet_repo: Path, capsys, edit, words: str) -> None:
    written(fleet_repo, edit(cinnabar()))
    assert run(fleet_repo, "disko", "check") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: machine 'cinnabar': machines/cinnabar/disko.json") and words in err
    assert run(fleet_repo, "plan") == 1
    assert words in capsys.readouterr().err


def test_a_file_for_a_machine_without_disks_is_refused(fleet_repo: Path, capsys) -> None:
    written(fleet_repo, cinnabar(), machine="stibnite")
    assert run(fleet_repo, "plan") == 1
    assert "machine 'stibnite': machines/stibnite/disko.json: the stack declares no disks" in capsys.readouterr().err
