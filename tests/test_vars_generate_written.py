"""What `generate` reports as written (the paths it then git-adds: a machine key missing from git is a
machine that cannot decrypt after a fresh clone), and the errors when the repository cannot be
written, which name what could not be written."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.sops.tree import KeyEntry, SopsTree
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine
from fleet_sdk.vars import generate as generate_module
from fleet_sdk.vars.generate import GenerateOptions, VarsWriteError, generate

PRIVATE, PUBLIC = sops.generate()
SECRET = Generator(name="token", files=(GeneratorFile(name="t"),), script="echo s3cret > $out/t")


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    SopsTree(repo).write_keys("users", "admin", [KeyEntry(PUBLIC)])
    return repo


def _fleet() -> Fleet:
    return Fleet(name="f", machines=tuple(Machine(name=m, generators=(SECRET,)) for m in ("m0", "m1")))


def test_new_machine_keys_of_every_machine_are_reported_written(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    result = generate(repo, _fleet(), GenerateOptions(identities=[PRIVATE]))
    tree = SopsTree(repo)
    written = {Path(p) for p in result.written}
    for machine in ("m0", "m1"):
        assert Path(tree.member_dir("machines", machine)) in written
        assert Path(tree.secret_dir(f"{machine}-age.key")) in written
        assert (repo / "sops" / "machines" / machine).is_dir()
    # a second run creates no keys and reports nothing
    assert generate(repo, _fleet(), GenerateOptions(identities=[PRIVATE])).written == []


def _no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_machine_keys_that_cannot_be_written_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SopsTree, "ensure_machine_keys", _no_space)
    with pytest.raises(VarsWriteError) as info:
        generate(_repo(tmp_path), _fleet(), GenerateOptions(identities=[PRIVATE]))
    message = str(info.value)
    assert message.startswith("the age keys of machines m0, m1: cannot write"), message
    assert "run `fleet vars generate` again" in message


def test_a_repair_that_cannot_be_written_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate_module, "recover", _no_space)
    with pytest.raises(VarsWriteError, match="^repairing what an interrupted run left: cannot write"):
        generate(_repo(tmp_path), _fleet(), GenerateOptions(identities=[PRIVATE]))
