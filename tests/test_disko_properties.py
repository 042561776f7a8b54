"""Properties of DiskLayout over random layouts (tests/disko_strategies.py).

(a) valid layouts round-trip through `to_disko`, `render` and JSON exactly (options set to their
    defaults stay set, unset ones stay unset), pass `check()`, and never crash `check` or the plan;
(b) some of them round-trip through real Nix (`builtins.fromJSON (builtins.readFile …)`);
(c) a single invalid mutation (a bad size, type code, relative path, non-string zfs option, missing
    required option, unknown option, unknown content type) is refused with a DiskoError naming the
    mutated node, never another exception; a semantic mutation (a second 100% partition, a dangling
    pool/vg/array name, a duplicate mountpoint) is reported by `check()` naming the node.

Regressions of bugs these properties found are pinned at the end.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet_sdk.disko import BootMode, DiskLayout, DiskoError, PartitionPlanError
from fleet_sdk.spec.disks.checks import mounts
from fleet_sdk.spec.disks.model import Gpt
from fleet_sdk.tools import nix
from fleet_sdk.tools.runner import LOCAL

from .disko_examples import VALID
from .disko_strategies import layouts as valid_layouts
from .disko_strategies import node_paths

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- (a) round trips ---------------------------------------------------------------------------


@FAST
@given(devices=valid_layouts())
def test_valid_layouts_round_trip_exactly(devices: dict[str, Any]) -> None:
    layout = DiskLayout.from_disko(copy.deepcopy(devices))
    assert layout.to_disko() == devices  # exactly what was set, defaults and nulls included
    assert DiskLayout.from_disko(layout.to_disko()).to_disko() == layout.to_disko()
    rendered = layout.render()
    again = DiskLayout.from_disko(json.loads(rendered))
    assert again == layout
    assert again.to_disko() == devices  # model equality ignores which options were set; this does not
    assert again.render() == rendered


@FAST
@given(devices=valid_layouts(), boot=st.sampled_from([None, "bios", "uefi"]), size=st.integers(1, 400))
def test_valid_layouts_pass_the_checks_and_never_crash_them(
    devices: dict[str, Any], boot: BootMode | None, size: int
) -> None:
    layout = DiskLayout.from_disko(devices)
    assert [str(p) for p in layout.check()] == []
    # against a host: problems (missing boot partitions, sizes that do not fit) are fine, crashes are not
    assert isinstance(layout.check(boot=boot, disk_bytes=size * 10**9), list)
    for key, disk in layout.disk.items():
        if isinstance(disk.content, Gpt):
            try:
                plan = layout.partition_plan(key, size * 10**9)
            except PartitionPlanError as e:
                assert e.problems[0].path.startswith(f"disk.{key}.content.partitions.")
            else:
                assert [p.number for p in plan] == list(range(1, len(disk.content.partitions) + 1))


# -- (b) through real Nix ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nix_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which(nix.NIX_INSTANTIATE) is None:
        reason = "nix-instantiate not found (Debian package nix-bin; see scripts/system-deps)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)
    return tmp_path_factory.mktemp("disko-json")


@pytest.mark.integration
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(devices=valid_layouts())
def test_valid_layouts_round_trip_through_nix(devices: dict[str, Any], nix_dir: Path) -> None:
    layout = DiskLayout.from_disko(devices)
    path = nix_dir / "disko.json"
    path.write_text(layout.render())
    value = nix.eval_expr(LOCAL, f"builtins.fromJSON (builtins.readFile {json.dumps(str(path))})")
    assert value == layout.to_disko()
    assert DiskLayout.from_disko(value).to_disko() == devices


# -- (c) invalid mutations -----------------------------------------------------------------------

MOUNTING = ("filesystem", "btrfs", "btrfs_subvol", "zfs_fs", "zpool", "nodev", "bcachefs_filesystem")
ABSPATHS = {**{kind: "mountpoint" for kind in (*MOUNTING, "bcachefs_subvolume")}, "disk": "device"}
REQUIRED = {
    "filesystem": "format",
    "luks": "name",
    "zfs": "pool",
    "lvm_pv": "vg",
    "mdraid": "name",
    "bcachefs": "filesystem",
    "disk": "device",
    "lvm_lv": "size",
    "nodev": "fsType",
    "lvm_vg": "type",
    "bcachefs_filesystem": "type",
    "swapfile": "size",
}
OPTION_MAPS = {"zpool": ("options", "rootFsOptions"), "zfs_fs": ("options",), "zfs_volume": ("options",)}
PARTITION_SLOT = ("partition", "lvm_lv", "zfs_volume")  # content held by these: no gpt or table
WRONG_OPTIONS = ("mountPoint", "fstype", "sizee", "Type", "_create", "extra args")


@st.composite
def invalid_mutations(draw: st.DrawFn) -> tuple[dict[str, Any], str, str]:
    """(mutated devices, the node path a problem must name, what was done)."""
    devices = copy.deepcopy(draw(valid_layouts()))
    nodes = list(node_paths(devices))
    dispatched = [n for n in nodes if n.slot in ("content", "dataset")]  # nodes selected by their type
    by_mutation = {
        "unknown-option": nodes,
        "size": [n for n in nodes if n.kind == "partition" and "size" in n.node],
        "type-code": [n for n in nodes if n.kind == "partition"],
        "relative-path": [n for n in nodes if n.kind in ABSPATHS],
        "option-not-a-string": [n for n in nodes if n.kind in OPTION_MAPS],
        "missing-required": [n for n in nodes if n.kind in REQUIRED],
        "missing-type": dispatched,
        "unknown-type": dispatched + [n for n in nodes if n.slot == "device"],
    }
    mutation = draw(st.sampled_from([m for m, targets in by_mutation.items() if targets]))
    if mutation == "unknown-option" and draw(st.integers(0, 9)) == 0:
        devices["disks"] = {}  # a typo of a collection
        return devices, "disks", mutation
    n = draw(st.sampled_from(by_mutation[mutation]))
    node, at = n.node, n.at
    if mutation == "unknown-option":
        option = draw(st.sampled_from(WRONG_OPTIONS))
        node[option] = draw(st.sampled_from(["x", 1, None, True]))
        return devices, f"{at}.{option}", mutation
    if mutation == "size":
        node["size"] = draw(st.sampled_from(["512MiB", "1.5G", "50%", "1g", "100%FREE", "", "+1G", "1 G", "G"]))
        return devices, f"{at}.size", mutation
    if mutation == "type-code":
        node["type"] = draw(
            st.sampled_from(["ESP", "EF0", "EF000", "ZZZZ", "8300 ", "0FC63DAF-8483-4772-8E79-3D69D8477DE"])
        )
        return devices, f"{at}.type", mutation
    if mutation == "relative-path":
        field = ABSPATHS[n.kind]
        node[field] = draw(st.sampled_from(["boot", "", "./boot", "home/user", "~/data", "sda"]))
        return devices, f"{at}.{field}", mutation
    if mutation == "option-not-a-string":
        field = draw(st.sampled_from(OPTION_MAPS[n.kind]))
        key = draw(st.sampled_from(["ashift", "compression", "mountpoint", *node.get(field, {})]))
        node.setdefault(field, {})[key] = draw(st.sampled_from([12, 0, True, False, 1.5, None, ["lz4"], {"a": "b"}]))
        return devices, f"{at}.{field}.{key}", mutation
    if mutation == "missing-required":
        del node[REQUIRED[n.kind]]
        return devices, f"{at}.{REQUIRED[n.kind]}", mutation
    if mutation == "missing-type":
        del node["type"]  # a content node or dataset without its dispatching type
        return devices, at, mutation
    wrong = ["ext4", "partition", "lvm", "GPT", "", "disk", "zpool", "topology"]
    if n.slot == "device":  # disk, zpool, …: one type each, not dispatched
        node["type"] = draw(st.sampled_from([w for w in [*wrong, "lvm_vg", "mdadm", "gpt"] if w != n.kind]))
        return devices, f"{at}.type", mutation
    if n.slot == "dataset":
        wrong += ["zfs", "filesystem", "zfs_vol"]
    elif n.parent in PARTITION_SLOT:
        wrong += ["gpt", "table"]  # no partition tables inside partitions, LVs or zvols
    else:
        wrong += ["zfs_fs", "zfs_volume", "btrfs_subvol"]
    node["type"] = draw(st.sampled_from(wrong))
    return devices, at, mutation


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=invalid_mutations())
def test_invalid_mutations_are_refused_naming_the_node(case: tuple[dict[str, Any], str, str]) -> None:
    devices, expected, mutation = case
    with pytest.raises(DiskoError) as e:
        DiskLayout.from_disko(devices)
    paths = [p.path for p in e.value.problems]
    assert expected in paths, (mutation, expected, paths)
    assert f"  {expected}: " in str(e.value)
    node = expected.rsplit(".", 1)[0] if mutation not in ("missing-type", "unknown-type") else expected
    assert all(p.startswith(node) for p in paths), (mutation, expected, paths)  # nothing else is blamed


# -- (c) semantic mutations ------------------------------------------------------------------------


@st.composite
def semantic_mutations(draw: st.DrawFn) -> tuple[dict[str, Any], set[str], str]:
    """(mutated devices, node paths of which one must be named, words of the problem)."""
    devices = copy.deepcopy(draw(valid_layouts()))
    nodes = list(node_paths(devices))
    first_disk = next(iter(devices["disk"]))
    mutation = draw(st.sampled_from(["second-100%", "dangling-reference", "duplicate-mountpoint"]))
    if mutation == "second-100%":
        gpts = [n for n in nodes if n.kind == "gpt"]
        if not gpts:  # give the first disk a table
            devices["disk"][first_disk]["content"] = {"type": "gpt", "partitions": {}}
            gpts = [n for n in node_paths(devices) if n.kind == "gpt"]
        gpt = draw(st.sampled_from(gpts))
        partitions = gpt.node["partitions"]
        while len(partitions) < 2:
            partitions[f"added{len(partitions)}"] = {"size": "1M"}
        full = [k for k, p in partitions.items() if p.get("size") == "100%"]  # at most one
        others = st.sampled_from(sorted(k for k in partitions if k not in full))
        keys = [*full, draw(others)] if full else draw(st.lists(others, min_size=2, max_size=2, unique=True))
        for key in keys:
            partitions[key].pop("end", None)
            partitions[key].pop("priority", None)
            partitions[key]["size"] = "100%"
        return devices, {f"{gpt.at}.partitions.{k}" for k in keys}, "second size = 100%"
    if mutation == "dangling-reference":
        fields = {"zfs": "pool", "lvm_pv": "vg", "mdraid": "name", "bcachefs": "filesystem"}
        refs = [n for n in nodes if n.kind in fields]
        if not refs:
            devices["disk"][first_disk]["content"] = {"type": "zfs", "pool": "zroot"}
            refs = [n for n in node_paths(devices) if n.kind in fields]
        ref = draw(st.sampled_from(refs))
        ref.node[fields[ref.kind]] = draw(st.sampled_from(["zrooot", "no-such-name", "Zroot"]))
        return devices, {ref.at}, "names no"
    mounted = mounts(DiskLayout.from_disko(devices))
    first_mp, first = draw(st.sampled_from(mounted))
    others = [path for _, path in mounted if path != first]
    if others:
        second = draw(st.sampled_from(others))
        next(n for n in nodes if n.at == second).node["mountpoint"] = first_mp
    else:
        second = "nodev.dup"
        devices.setdefault("nodev", {})["dup"] = {"fsType": "tmpfs", "mountpoint": first_mp}
    return devices, {first, second}, f"mountpoint {first_mp} is also mounted by"


@FAST
@given(case=semantic_mutations())
def test_semantic_mutations_are_reported_by_check(case: tuple[dict[str, Any], set[str], str]) -> None:
    devices, named, words = case
    problems = DiskLayout.from_disko(devices).check()
    assert any(p.path in named and words in p.message for p in problems), (named, words, [str(p) for p in problems])


# -- known bugs ------------------------------------------------------------------------------------


def _one_disk(partitions: dict[str, Any]) -> dict[str, Any]:
    return {"disk": {"main": {"device": "/dev/sda", "content": {"type": "gpt", "partitions": partitions}}}}


ROOT = {"size": "100%", "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/"}}


def test_partition_tied_after_the_100_percent_one_is_reported() -> None:
    layout = DiskLayout.from_disko(
        _one_disk({"root": ROOT, "swap": {"size": "1G", "priority": 9001, "content": {"type": "swap"}}})
    )
    assert any(
        p.path == "disk.main.content.partitions.swap" and "created after 'root'" in p.message for p in layout.check()
    )


@pytest.mark.parametrize(
    "where, value",
    [
        pytest.param(("disk", "main", "content", "partitions", "root", "end"), None, id="partition.end"),
        pytest.param(("disk", "main", "content", "partitions", "root", "priority"), None, id="partition.priority"),
        pytest.param(("disk", "main", "content", "partitions", "root", "name"), None, id="partition.name"),
        pytest.param(("disk", "main", "content", "partitions", "root", "label"), None, id="partition.label"),
        pytest.param(("disk", "main", "content", "partitions", "root", "type"), None, id="partition.type"),
        pytest.param(("disk", "main", "name"), None, id="disk.name"),
        pytest.param(("disk", "main", "content", "device"), None, id="gpt.device"),
    ],
)
def test_explicit_null_for_a_non_nullable_option_is_refused(where: tuple[str, ...], value: object) -> None:
    devices = _one_disk({"root": copy.deepcopy(ROOT)})
    node = devices
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(DiskoError) as e:
        DiskLayout.from_disko(devices)
    assert ".".join(where) in [p.path for p in e.value.problems]


def test_a_partition_keyed_str_is_named() -> None:
    with pytest.raises(DiskoError) as e:
        DiskLayout.from_disko(_one_disk({"str": {"size": "1.5G"}}))
    assert [p.path for p in e.value.problems] == ["disk.main.content.partitions.str.size"]


def test_topology_errors_name_the_vdev() -> None:
    devices = copy.deepcopy(VALID["V9"])
    devices["zpool"]["zroot"]["mode"]["topology"]["vdev"][0]["mode"] = "mirrorr"
    with pytest.raises(DiskoError) as e:
        DiskLayout.from_disko(devices)
    paths = [p.path for p in e.value.problems]
    assert "zpool.zroot.mode.topology.vdev.0.mode" in paths
    assert not any("TopologyMode" in p or "[" in p for p in paths), paths
