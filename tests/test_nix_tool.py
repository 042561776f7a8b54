"""fleet_sdk.tools.nix and nix/disko.nix against the real nix-instantiate (Debian's nix-bin).

With CI=true a missing nix-instantiate fails these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fleet_sdk.tools import nix
from fleet_sdk.tools.runner import LOCAL

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[1]
DISKO_NIX = PROJECT / "nix" / "disko.nix"

# A realistic machines/<m>/disko.json: BIOS+UEFI boot, a zfs pool, lvm on luks, nested content,
# ints (priority, attributes), "100%" sizes, nulls, booleans, lists and attrs-of-str option maps.
DEVICES = {
    "disk": {
        "main": {
            "type": "disk",
            "device": "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T123456",
            "content": {
                "type": "gpt",
                "partitions": {
                    "boot": {"size": "1M", "type": "EF02", "priority": 100},
                    "ESP": {
                        "size": "1G",
                        "type": "EF00",
                        "attributes": [0, 2],
                        "content": {
                            "type": "filesystem",
                            "format": "vfat",
                            "mountpoint": "/boot",
                            "mountOptions": ["umask=0077"],
                            "extraArgs": ["-F", "32"],
                        },
                    },
                    "zfs": {"size": "100%", "type": "BF00", "content": {"type": "zfs", "pool": "zroot"}},
                },
            },
        },
        "data": {
            "type": "disk",
            "device": "/dev/sdb",
            "content": {
                "type": "gpt",
                "partitions": {
                    "crypt": {
                        "start": "2048s",
                        "end": "-0",
                        "alignment": 1,
                        "content": {
                            "type": "luks",
                            "name": "crypted",
                            "passwordFile": "/run/partitioning-secrets/data/key",
                            "settings": {"allowDiscards": True},
                            "initrdUnlock": False,
                            "content": {"type": "lvm_pv", "vg": "pool"},
                        },
                    }
                },
            },
        },
    },
    "zpool": {
        "zroot": {
            "type": "zpool",
            "mode": "",
            "options": {"ashift": "12"},
            "rootFsOptions": {"compression": "zstd", "canmount": "off"},
            "mountpoint": None,
            "datasets": {
                "root/nixos": {"type": "zfs_fs", "mountpoint": "/", "options": {"atime": "off"}},
                "swap": {"type": "zfs_volume", "size": "8G", "content": {"type": "swap", "priority": 10}},
            },
        }
    },
    "lvm_vg": {
        "pool": {
            "type": "lvm_vg",
            "lvs": {
                "home": {
                    "size": "100%FREE",
                    "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/home"},
                }
            },
        }
    },
    "nodev": {"/tmp": {"type": "nodev", "fsType": "tmpfs", "mountOptions": ["size=2G", "mode=1777"]}},
}


@pytest.fixture(autouse=True)
def _nix_instantiate() -> None:
    if shutil.which(nix.NIX_INSTANTIATE) is None:
        reason = "nix-instantiate not found (Debian package nix-bin; see scripts/system-deps)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_attrset_file_evaluates_to_json(tmp_path: Path) -> None:
    f = write(
        tmp_path / "disko.nix",
        """{ disko.devices.disk.main = {
             type = "disk"; device = "/dev/sda";
             content = { type = "gpt"; partitions.ESP = { size = "512M"; type = "EF00"; priority = 1; }; };
           }; }""",
    )
    main = {
        "type": "disk",
        "device": "/dev/sda",
        "content": {"type": "gpt", "partitions": {"ESP": {"size": "512M", "type": "EF00", "priority": 1}}},
    }
    assert nix.eval_file(LOCAL, f) == {"disko": {"devices": {"disk": {"main": main}}}}
    assert nix.eval_file(LOCAL, f, "disko.devices.disk.main") == main


def test_function_files_are_called_with_args_and_stand_ins(tmp_path: Path) -> None:
    # disko's examples take `{ disks ? [...], ... }` or an unused `{ lib, ... }`
    f = write(
        tmp_path / "fn.nix",
        """{ lib, disks ? [ "/dev/vdb" ], ... }:
           { disko.devices.disk.main = { type = "disk"; device = builtins.head disks; }; }""",
    )
    assert nix.eval_file(LOCAL, f, "disko.devices.disk.main.device") == "/dev/vdb"
    assert nix.eval_file(LOCAL, f, "disko.devices.disk.main.device", args={"disks": ["/dev/sda"]}) == "/dev/sda"
    # a function returning a module function is called again (parametrised NixOS module)
    g = write(tmp_path / "curried.nix", "{ size }: { config, ... }: { disko.devices.size = size; }")
    assert nix.eval_file(LOCAL, g, "disko.devices", args={"size": "1G"}) == {"size": "1G"}


def test_using_an_argument_fleet_sdk_cannot_provide_says_so(tmp_path: Path) -> None:
    f = write(tmp_path / "uses-lib.nix", "{ lib, ... }: { disko.devices = lib.mkDefault { }; }")
    with pytest.raises(nix.NixError) as e:
        nix.eval_file(LOCAL, f)
    assert str(f) in str(e.value)
    assert "`lib`" in str(e.value) and "without nixpkgs" in str(e.value)


def test_syntax_error_names_the_file_and_carries_nix_message(tmp_path: Path) -> None:
    f = write(tmp_path / "broken.nix", "{ disko.devices = ; }\n")
    with pytest.raises(nix.NixError) as e:
        nix.eval_file(LOCAL, f, "disko.devices")
    message = str(e.value)
    assert message.startswith(f"evaluating {f} (attribute disko.devices): syntax error")
    assert f"at {f}:1:" in message  # nix's location and source excerpt are kept
    assert "fix broken.nix" in message


def test_missing_attribute_and_missing_file(tmp_path: Path) -> None:
    f = write(tmp_path / "a.nix", "{ disko.devices = { }; }")
    with pytest.raises(nix.NixError, match="attribute 'nope' in selection path 'disko.nope' not found"):
        nix.eval_file(LOCAL, f, "disko.nope")
    with pytest.raises(nix.NixError, match="does not exist"):
        nix.eval_file(LOCAL, tmp_path / "absent.nix")


def test_eval_expr() -> None:
    assert nix.eval_expr(LOCAL, '{ a = [ 1 "x" null true ]; b.c = 2 * 3; }') == {
        "a": [1, "x", None, True],
        "b": {"c": 6},
    }
    with pytest.raises(nix.NixError, match="undefined variable 'nope'"):
        nix.eval_expr(LOCAL, "nope")


def test_evaluation_never_writes_to_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # NIX_REMOTE pointing at a daemon that does not exist must not matter: --store dummy:// wins
    monkeypatch.setenv("NIX_REMOTE", "daemon")
    secret = write(tmp_path / "secret.key", "hunter2\n")
    f = write(tmp_path / "leak.nix", '{ passwordFile = "${./secret.key}"; }')
    store_path = nix.eval_file(LOCAL, f, "passwordFile")
    assert store_path.startswith("/nix/store/") and store_path.endswith("-secret.key")
    assert not Path(store_path).exists(), "a file was copied into the Nix store"
    assert secret.read_text() == "hunter2\n"


def disko_repo(tmp_path: Path, machine: str = "web") -> Path:
    repo = tmp_path / "fleet-repo"
    write(repo / "machines" / machine / "disko.json", json.dumps(DEVICES, indent=2, sort_keys=True) + "\n")
    return repo


def test_disko_module_round_trips_the_machine_json(tmp_path: Path) -> None:
    repo = disko_repo(tmp_path)
    devices = nix.eval_file(LOCAL, DISKO_NIX, "disko.devices", args={"flakeRoot": repo, "machine": "web"})
    assert devices == DEVICES
    zfs = devices["disk"]["main"]["content"]["partitions"]
    assert zfs["boot"]["priority"] == 100 and zfs["zfs"]["size"] == "100%"


def test_disko_module_is_a_plain_module_with_a_path_root(tmp_path: Path) -> None:
    # as a flake uses it: flakeRoot a Nix path, the result a module attrset (shorthand form)
    repo = disko_repo(tmp_path)
    module = nix.eval_expr(
        LOCAL, f'import {json.dumps(str(DISKO_NIX))} {{ flakeRoot = /. + {json.dumps(str(repo))}; machine = "web"; }}'
    )
    assert module == {"_file": str(repo / "machines/web/disko.json"), "disko": {"devices": DEVICES}}


def test_disko_module_for_a_machine_without_json(tmp_path: Path) -> None:
    repo = disko_repo(tmp_path)
    with pytest.raises(nix.NixError, match=r"machines/db/disko.json does not exist: write it with `fleet disko"):
        nix.eval_file(LOCAL, DISKO_NIX, "disko.devices", args={"flakeRoot": repo, "machine": "db"})
