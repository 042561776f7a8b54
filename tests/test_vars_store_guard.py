"""The store touches nothing but exactly one generator's folder, `shared/<name>` or
`per-machine/<machine>/<name>` with plain names, whatever GeneratorId it is handed (the spec
refuses such names too; this is the store's own guard, tested with ids built by hand)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.errors import FleetError, StoreLayoutError
from fleet_sdk.sops.tree import KeyEntry, SopsTree
from fleet_sdk.spec import Generator, GeneratorFile
from fleet_sdk.vars.store import GeneratorId, Staged, VarsStore

from .vars_project import snapshot

GEN = Generator(name="gen", files=(GeneratorFile(name="s"), GeneratorFile(name="p", secret=False)), script="true")
OUTPUTS = {"s": b"secret", "p": b"public"}
NEW = {"s": b"new", "p": b"new"}
BAD = [
    GeneratorId("..", None),
    GeneratorId(".", None),
    GeneratorId("gen", ".."),
    GeneratorId("..", "m0"),
    GeneratorId("a/b", None),
    GeneratorId("gen", "m0/../../shared"),
    GeneratorId("gen", ""),
    GeneratorId("", None),
    GeneratorId(".gen.new-abcdefgh", None),  # what a staging folder is called
]


@pytest.fixture
def store(tmp_path: Path) -> VarsStore:
    _, public = sops.generate()
    SopsTree(tmp_path).write_keys("users", "admin", [KeyEntry(public)])
    store = VarsStore(tmp_path)
    # live generators beside the targets the bad ids would reach
    for gid in (GeneratorId("gen", "m0"), GeneratorId("gen", None), GeneratorId("other", None)):
        store.commit([store.stage(gid, GEN, OUTPUTS, [], "admin")])
    return store


def test_the_bad_ids_would_reach_other_folders(store: VarsStore) -> None:
    """Negative control: joined as they are, these ids name folders that are not one generator's."""
    root = store.root.resolve()
    escapes = {os.path.normpath(root / gid.rel_dir) for gid in BAD[:6]}
    assert str(root) in escapes and str(root / "per-machine") in escapes and str(root / "shared") in escapes


@pytest.mark.parametrize("gid", BAD, ids=str)
def test_every_operation_refuses_a_bad_generator_id_naming_the_path(store: VarsStore, gid: GeneratorId) -> None:
    before = snapshot(store.repo)
    operations = [
        lambda: store.stage(gid, GEN, OUTPUTS, [], "admin"),
        lambda: store.set_file(gid, GEN.files[1], b"x", [], "admin"),
        lambda: store.public(gid, "p"),
        lambda: store.complete(gid, GEN),
    ]
    for operation in operations:
        with pytest.raises(StoreLayoutError) as info:
            operation()
        message = str(info.value)
        assert isinstance(info.value, FleetError)
        assert message.startswith(f"internal error: refusing vars/{gid.rel_dir}") and "report this" in message
    assert snapshot(store.repo) == before


def test_bad_file_names_and_forged_staged_folders_are_refused(store: VarsStore, tmp_path: Path) -> None:
    before = snapshot(store.repo)
    for name in ("..", ".", "a/b", ".validation-hash", ""):
        with pytest.raises(StoreLayoutError, match=r"refusing vars/per-machine/m0/gen/"):
            store.set_file(GeneratorId("gen", "m0"), GeneratorFile(name=name, secret=False), b"x", [], "admin")
    assert snapshot(store.repo) == before
    good = GeneratorId("gen", "m0")
    staged = store.stage(good, GEN, NEW, [], "admin")
    before = snapshot(store.repo)
    bystander = tmp_path / "elsewhere"
    bystander.mkdir()
    (bystander / "keep").write_text("not the store's")
    other = store.root / "shared" / "other"
    forged = [
        # would swap another generator away
        (Staged(good, staged.staging, other), f"refusing {other}: a staged generator's folder and its staging"),
        # not beside it
        (Staged(GeneratorId("other", None), staged.staging, other), f"refusing {other}: a staged generator's"),
        (Staged(good, bystander, staged.final), f"refusing {staged.final}: a staged generator's folder and its"),
        # beside it, but not a folder `stage` made
        (Staged(good, staged.final.parent / "gen2", staged.final), "gen2: a staging folder must be a single name"),
    ]
    for s, words in forged:
        with pytest.raises(StoreLayoutError) as info:
            store.commit([staged, s])  # refused whole: the genuine one stays staged, nothing is removed
        assert words in str(info.value)
    assert staged.staging.is_dir() and (bystander / "keep").is_file()
    assert snapshot(store.repo) == before  # nothing swapped
    # the control: the genuine staged folder still goes in
    assert store.commit([staged]) == [store.dir(good)]
    assert store.public(good, "p") == b"new"
