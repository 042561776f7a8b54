"""DiskLayout against the real nix-instantiate: rendered layouts read back by nix/disko.nix, and
layouts written as Nix files read with `DiskLayout.from_nix_file`.

With CI=true a missing nix-instantiate fails these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.disko import DiskLayout, DiskoError
from fleet_sdk.tools import nix
from fleet_sdk.tools.runner import LOCAL
from tests.tools import require

from .conftest import prod_fleet
from .disko_examples import VALID

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[1]
DISKO_NIX = PROJECT / "nix" / "disko.nix"


@pytest.fixture(autouse=True)
def _nix_instantiate() -> None:
    require((nix.NIX_INSTANTIATE, "nix-bin"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def evaluate_machine(repo: Path, machine: str) -> Any:
    """disko.devices of nix/disko.nix for `machine` of the fleet repository `repo`."""
    return nix.eval_file(LOCAL, DISKO_NIX, "disko.devices", args={"flakeRoot": repo, "machine": machine})


# -- rendered layouts through nix/disko.nix ----------------------------------------------------


@pytest.fixture(scope="module")
def prod_layouts() -> dict[str, DiskLayout]:
    return {m.name: m.disks for m in prod_fleet().machines if m.disks is not None}


@pytest.fixture(scope="module")
def fleet_repo(tmp_path_factory: pytest.TempPathFactory, prod_layouts: dict[str, DiskLayout]) -> Path:
    """A fleet repository with machines/<m>/disko.json for the prod machines and one per §11 example."""
    repo = tmp_path_factory.mktemp("fleet-repo")
    for machine, layout in prod_layouts.items():
        write(repo / "machines" / machine / "disko.json", layout.render())
    for name, devices in VALID.items():
        write(repo / "machines" / f"example-{name}" / "disko.json", DiskLayout.from_disko(devices).render())
    return repo


def test_prod_layouts_evaluate_to_what_was_rendered(fleet_repo: Path, prod_layouts: dict[str, DiskLayout]) -> None:
    assert {"cinnabar", "electrum", "magnetite", "galena", "scheelite", "pyrite"} <= set(prod_layouts)
    for machine, layout in prod_layouts.items():
        devices = evaluate_machine(fleet_repo, machine)
        assert devices == layout.to_disko(), machine
        assert DiskLayout.from_disko(devices).render() == layout.render()
    # what the BIOS host's disko sees: GRUB's EF02 partition first, the pool's datasets as strings
    cinnabar = evaluate_machine(fleet_repo, "cinnabar")
    partitions = cinnabar["disk"]["main"]["content"]["partitions"]
    assert partitions["boot"] == {"size": "1M", "type": "EF02"}
    assert partitions["grub"]["content"]["mountpoint"] == "/boot"
    assert cinnabar["zpool"]["zroot"]["rootFsOptions"] == {"compression": "lz4", "com.sun:auto-snapshot": "true"}


@pytest.mark.parametrize("name", sorted(VALID))
def test_examples_evaluate_to_what_was_rendered(fleet_repo: Path, name: str) -> None:
    layout = DiskLayout.from_disko(copy.deepcopy(VALID[name]))
    devices = evaluate_machine(fleet_repo, f"example-{name}")
    assert devices == layout.to_disko() == VALID[name]
    assert DiskLayout.from_disko(devices) == layout


# -- DiskLayout.from_nix_file ------------------------------------------------------------------

# the usual disko.nix of a machine: a module function returning disko.devices
DEVICES_NIX = """{
    disk.main = {
      type = "disk";
      device = "/dev/sda";
      content = {
        type = "gpt";
        partitions = {
          ESP = {
            size = "512M";
            type = "EF00";
            content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; };
          };
          root = {
            size = "100%";
            content = { type = "filesystem"; format = "ext4"; mountpoint = "/"; };
          };
        };
      };
    };
  }"""
DEVICES_JSON: dict[str, Any] = {
    "disk": {
        "main": {
            "type": "disk",
            "device": "/dev/sda",
            "content": {
                "type": "gpt",
                "partitions": {
                    "ESP": {
                        "size": "512M",
                        "type": "EF00",
                        "content": {"type": "filesystem", "format": "vfat", "mountpoint": "/boot"},
                    },
                    "root": {
                        "size": "100%",
                        "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/"},
                    },
                },
            },
        }
    }
}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"{{ ... }}: {{ disko.devices = {DEVICES_NIX}; }}", id="module-function"),
        pytest.param(f"{{ lib, ... }}: {{ disko.devices = {DEVICES_NIX}; }}", id="unused-lib"),
        pytest.param(f"{{ disko.devices = {DEVICES_NIX}; }}", id="attrset"),
        pytest.param(DEVICES_NIX, id="bare-devices"),
        pytest.param(f"{{ lib ? null, ... }}: {{ disko.devices = {DEVICES_NIX}; }}", id="defaulted-argument"),
    ],
)
def test_from_nix_file_equals_the_layout_from_json(tmp_path: Path, text: str) -> None:
    layout = DiskLayout.from_nix_file(write(tmp_path / "disko.nix", text))
    expected = DiskLayout.from_disko(copy.deepcopy(DEVICES_JSON))
    assert layout == expected
    assert layout.to_disko() == DEVICES_JSON
    assert layout.render() == expected.render()
    assert [p.label for p in layout.partition_plan("main", 10 * 1024**3)] == ["disk-main-ESP", "disk-main-root"]


def test_from_nix_file_attr_selects_a_nested_attribute(tmp_path: Path) -> None:
    f = write(
        tmp_path / "machines.nix",
        f"""{{ lib, ... }}: {{
          machines.web.disko.devices = {DEVICES_NIX};
          machines.db = {{ disko.devices.nodev."/tmp" = {{ fsType = "tmpfs"; }}; }};
          notALayout = 42;
        }}""",
    )
    expected = DiskLayout.from_disko(copy.deepcopy(DEVICES_JSON))
    assert DiskLayout.from_nix_file(f, "machines.web.disko.devices") == expected
    assert DiskLayout.from_nix_file(f, "machines.web") == expected  # a {disko.devices} wrapper is unwrapped
    assert DiskLayout.from_nix_file(f, "machines.db.disko.devices").to_disko() == {
        "nodev": {"/tmp": {"fsType": "tmpfs"}}
    }
    with pytest.raises(DiskoError) as e:
        DiskLayout.from_nix_file(f, "notALayout")
    assert [p.path for p in e.value.problems] == ["notALayout"]
    assert str(f) in str(e.value) and "does not evaluate to an attribute set" in str(e.value)
    with pytest.raises(nix.NixError, match="attribute 'nope'"):
        DiskLayout.from_nix_file(f, "machines.nope")


@pytest.mark.parametrize(
    "change, path",
    [
        pytest.param(('size = "512M"', 'size = "512MiB"'), "disk.main.content.partitions.ESP.size", id="512MiB"),
        pytest.param(('type = "EF00"', 'type = "ESP"'), "disk.main.content.partitions.ESP.type", id="type-ESP"),
        pytest.param(
            ('mountpoint = "/boot"', 'mountpoint = "boot"'),
            "disk.main.content.partitions.ESP.content.mountpoint",
            id="relative-mountpoint",
        ),
        pytest.param(
            ('format = "ext4"; ', ""), "disk.main.content.partitions.root.content.format", id="missing-format"
        ),
        pytest.param(('type = "gpt";', 'type = "gpt"; sizes = 1;'), "disk.main.content.sizes", id="unknown-option"),
    ],
)
def test_from_nix_file_invalid_layout_names_the_node(tmp_path: Path, change: tuple[str, str], path: str) -> None:
    old, new = change
    assert DEVICES_NIX.count(old) == 1
    f = write(tmp_path / "disko.nix", f"{{ lib, ... }}: {{ disko.devices = {DEVICES_NIX.replace(old, new)}; }}")
    with pytest.raises(DiskoError) as e:
        DiskLayout.from_nix_file(f)
    assert [p.path for p in e.value.problems] == [path]
    assert str(e.value).startswith(f"{f}: invalid disko layout:")
    assert f"  {path}: " in str(e.value)


# -- values Nix cannot hold ---------------------------------------------------------------------


def _with(partition: dict[str, Any], **disk: Any) -> dict[str, Any]:
    devices = copy.deepcopy(DEVICES_JSON)
    devices["disk"]["main"]["content"]["partitions"]["root"].update(partition)
    devices["disk"]["main"].update(disk)
    return devices


ROOT_PATH = "disk.main.content.partitions.root"


@pytest.mark.parametrize(
    "devices, path, words",
    [
        pytest.param(_with({"priority": 2**64}), f"{ROOT_PATH}.priority", "64-bit", id="int-beyond-64-bit"),
        pytest.param(
            _with({"content": {"type": "luks", "name": "c", "settings": {"x": float("inf")}}}),
            f"{ROOT_PATH}.content.settings.x",
            "not a finite number",
            id="inf",
        ),
        pytest.param(_with({}, postCreateHook="echo a\x00b"), "disk.main.postCreateHook", "NUL", id="nul-in-string"),
    ],
)
def test_values_nix_cannot_hold_are_refused_naming_the_node(devices: dict[str, Any], path: str, words: str) -> None:
    """Rendered, these would not read back (an int beyond 64 bits becomes a float, a non-finite
    float null, a string is cut at its NUL), so disko would partition something else."""
    with pytest.raises(DiskoError) as e:
        DiskLayout.from_disko(devices)
    assert any(p.path == path and words in p.message for p in e.value.problems), str(e.value)
    # a layout built in Python is refused when rendered
    layout = DiskLayout.from_disko(DEVICES_JSON)
    layout.disk["main"].content.partitions["root"].priority = 2**64  # type: ignore[union-attr]
    with pytest.raises(DiskoError, match="priority: 18446744073709551616 is beyond"):
        layout.render()


def test_the_largest_values_nix_holds_read_back(tmp_path: Path) -> None:
    layout = DiskLayout.from_disko(_with({"priority": 2**63 - 1}))
    repo = tmp_path / "repo"
    write(repo / "machines" / "m" / "disko.json", layout.render())
    assert DiskLayout.from_disko(evaluate_machine(repo, "m")) == layout
