"""The vars store's writing side: a regenerated generator keeps the member links its files had
(machines only on deployed files), a broken link stops it before anything changes, and the
committer puts batches in place in order and discards what follows a failed commit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.errors import BrokenMemberError
from fleet_sdk.sops.tree import KeyEntry, SopsTree
from fleet_sdk.spec import Generator, GeneratorFile
from fleet_sdk.vars.committer import Committer
from fleet_sdk.vars.store import GeneratorId, Staged, VarsStore

from .vars_project import snapshot

GEN = Generator(
    name="gen",
    files=(
        GeneratorFile(name="deployed"),
        GeneratorFile(name="kept", deploy=False),
        GeneratorFile(name="public", secret=False),
    ),
    script="true",
)
GID = GeneratorId("gen", "m0")


def _outputs(tag: str) -> dict[str, bytes]:
    return {"deployed": f"d-{tag}".encode(), "kept": f"k-{tag}".encode(), "public": f"p-{tag}".encode()}


def _store(store: VarsStore, outputs: dict[str, bytes]) -> None:
    """GEN for machine m0, staged and committed as `generate` does."""
    store.commit([store.stage(GID, GEN, outputs, ["m0"], "admin")])


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    tree = SopsTree(tmp_path)
    identities = {}
    for kind, name in (("users", "admin"), ("users", "bob"), ("machines", "m0"), ("machines", "m1")):
        private, public = sops.generate()
        tree.write_keys(kind, name, [KeyEntry(public)])
        identities[name] = private
    return identities


def test_regeneration_keeps_member_links_and_drops_machines_of_undeployed_files(
    tmp_path: Path, keys: dict[str, str]
) -> None:
    store = VarsStore(tmp_path)
    _store(store, _outputs("1"))
    folder = tmp_path / "vars/per-machine/m0/gen"
    assert sorted(os.listdir(folder / "deployed/machines")) == ["m0"]
    assert not (folder / "kept/machines").exists()
    assert os.readlink(folder / "deployed/users/admin") == "../../../../../../sops/users/admin"
    # someone gave bob the deployed secret and m1 the undeployed one (as `clan secrets` could)
    os.symlink("../../../../../../sops/users/bob", folder / "deployed/users/bob")
    (folder / "kept/machines").mkdir()
    os.symlink("../../../../../../sops/machines/m1", folder / "kept/machines/m1")

    _store(store, _outputs("2"))
    assert sorted(os.listdir(folder / "deployed/users")) == ["admin", "bob"]
    secret = (folder / "deployed/secret").read_bytes()
    assert sops.decrypt(secret, [keys["bob"]]) == b"d-2" == sops.decrypt(secret, [keys["m0"]])
    assert not (folder / "kept/machines").exists()  # only deployed files are for machines
    with pytest.raises(sops.SopsError):
        sops.decrypt((folder / "kept/secret").read_bytes(), [keys["m1"]])
    assert (folder / "public/value").read_bytes() == b"p-2"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_broken_member_link_stops_regeneration_before_anything_changes(tmp_path: Path, keys: dict[str, str]) -> None:
    store = VarsStore(tmp_path)
    _store(store, _outputs("1"))
    os.symlink("../../../../../../sops/users/nobody", tmp_path / "vars/per-machine/m0/gen/deployed/users/nobody")
    before = snapshot(tmp_path)
    with pytest.raises(BrokenMemberError, match="deployed/users/nobody"):
        _store(store, _outputs("2"))
    assert snapshot(tmp_path) == before


class FailingSecondCommit(VarsStore):
    def __init__(self, repo: Path) -> None:
        super().__init__(repo)
        self.commits: list[list[GeneratorId]] = []

    def commit(self, batch: list[Staged]) -> list[Path]:
        self.commits.append([s.gid for s in batch])
        if len(self.commits) == 2:
            raise OSError("disk full")
        return super().commit(batch)


def test_the_committer_stops_at_a_failed_commit_and_discards_the_rest(tmp_path: Path, keys: dict[str, str]) -> None:
    store = FailingSecondCommit(tmp_path)
    committed: list[GeneratorId] = []
    committer = Committer(store, lambda batch, written: committed.extend(s.gid for s in batch))
    first = store.stage(GeneratorId("gen", "m0"), GEN, _outputs("a"), ["m0"], "admin")
    committer.submit(first)
    while not store.commits:  # the first batch is taken alone
        pass
    staged = [store.stage(GeneratorId(name, "m1"), GEN, _outputs(name), ["m1"], "admin") for name in ("a", "b", "c")]
    for s in staged:
        committer.submit(s)
    error = committer.close()
    assert isinstance(error, OSError) and "disk full" in str(error)
    assert committed == [GeneratorId("gen", "m0")]
    assert (tmp_path / "vars/per-machine/m0/gen/public/value").read_bytes() == b"p-a"
    for s in staged:
        assert not s.staging.exists() and not s.final.exists()  # discarded, never live
