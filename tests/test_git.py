"""fleet_sdk.tools.git.add against real `git add`: the same index (tree id and status) for new, changed,
removed, executable and symlinked files, and `git add` itself when the repository converts files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet_sdk.tools import git
from fleet_sdk.tools.runner import LOCAL

from .tools import require

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _git() -> None:
    require(("git", "git"))


def _git_cmd(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env).stdout


def _repo(path: Path) -> Path:
    path.mkdir(parents=True)
    _git_cmd(path, "init", "-q")
    return path


def _write_tree(root: Path) -> None:
    """A vars-like tree: nested folders, a secret, public values, member links, an executable."""
    gen = root / "vars/per-machine/m0/openssh"
    (gen / "ssh.id_ed25519/users").mkdir(parents=True)
    (gen / "ssh.id_ed25519/secret").write_bytes(b'{"data": "ENC[...]"}\n')
    (gen / "ssh.id_ed25519/secret").chmod(0o600)
    os.symlink("../../../../../../../sops/users/admin", gen / "ssh.id_ed25519/users/admin")
    (gen / "ssh.id_ed25519.pub").mkdir()
    (gen / "ssh.id_ed25519.pub/value").write_bytes(b"ssh-ed25519 AAAA")
    (gen / ".validation-hash").write_bytes(b"abc")
    (root / "sops/users/admin").mkdir(parents=True)
    (root / "sops/users/admin/key.json").write_bytes(b"[]")
    tool = root / "vars/shared/tool/run/value"
    tool.parent.mkdir(parents=True)
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o755)


def _both(tmp_path: Path) -> tuple[Path, Path]:
    ours, theirs = _repo(tmp_path / "ours"), _repo(tmp_path / "theirs")
    for repo in (ours, theirs):
        _write_tree(repo)
    return ours, theirs


def _same_index(ours: Path, theirs: Path) -> None:
    assert _git_cmd(ours, "write-tree") == _git_cmd(theirs, "write-tree")
    assert _git_cmd(ours, "status", "--porcelain") == _git_cmd(theirs, "status", "--porcelain")
    assert _git_cmd(ours, "fsck", "--no-dangling") == ""  # every blob the index names exists


PATHS = ["vars/per-machine/m0/openssh", "vars/shared/tool", "sops/users/admin/key.json"]


def test_add_gives_the_index_git_add_gives(tmp_path: Path) -> None:
    ours, theirs = _both(tmp_path)
    assert git.add(LOCAL, ours, [ours / p for p in PATHS])
    _git_cmd(theirs, "add", *PATHS)
    _same_index(ours, theirs)
    status = _git_cmd(ours, "status", "--porcelain")
    assert "A  vars/per-machine/m0/openssh/ssh.id_ed25519/users/admin" in status
    assert _git_cmd(ours, "ls-files", "-s", "vars/shared/tool/run/value").startswith("100755 ")
    assert _git_cmd(ours, "ls-files", "-s", "vars/per-machine/m0/openssh/ssh.id_ed25519/users/admin").startswith(
        "120000 "
    )


def test_a_regenerated_folder_drops_what_is_gone_and_stages_what_changed(tmp_path: Path) -> None:
    ours, theirs = _both(tmp_path)
    for repo in (ours, theirs):
        _git_cmd(repo, "add", ".")
        _git_cmd(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
        gen = repo / "vars/per-machine/m0/openssh"
        shutil.rmtree(gen / "ssh.id_ed25519/users")
        (gen / "ssh.id_ed25519.pub/value").write_bytes(b"ssh-ed25519 BBBB")
        (gen / "new/value").parent.mkdir()
        (gen / "new/value").write_bytes(b"new")
    assert git.add(LOCAL, ours, [ours / "vars/per-machine/m0/openssh"])
    _git_cmd(theirs, "add", "vars/per-machine/m0/openssh")
    _same_index(ours, theirs)
    assert "D  vars/per-machine/m0/openssh/ssh.id_ed25519/users/admin" in _git_cmd(ours, "status", "--porcelain")


@pytest.mark.parametrize(
    "setup",
    [
        lambda repo: (repo / ".gitattributes").write_text("*.pub/value text eol=crlf\nvalue text eol=crlf\n"),
        lambda repo: _git_cmd(repo, "config", "core.autocrlf", "true"),
        lambda repo: _git_cmd(repo, "config", "core.autocrlf", "input"),
    ],
    ids=["attributes", "autocrlf", "autocrlf-input"],
)
def test_converting_repositories_get_git_adds_blobs(tmp_path: Path, setup: object) -> None:
    ours, theirs = _both(tmp_path)
    for repo in (ours, theirs):
        setup(repo)  # type: ignore[operator]
        (repo / "vars/shared/tool/run/value").write_bytes(b"a\r\nb\r\n")
    git.add(LOCAL, ours, [ours / p for p in PATHS])
    _git_cmd(theirs, "add", *PATHS)
    _same_index(ours, theirs)
    blob = _git_cmd(ours, "ls-files", "-s", "vars/shared/tool/run/value").split()[1]
    assert _git_cmd(ours, "cat-file", "blob", blob) == "a\nb\n"  # converted, as git add does


def test_outside_a_work_tree_nothing_is_done(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert not git.add(LOCAL, tmp_path, [tmp_path / "f"])
    assert git._work_tree(LOCAL, tmp_path) is None


def test_a_sha256_repository_gets_sha256_blob_ids(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for repo in (ours, theirs):
        repo.mkdir()
        _git_cmd(repo, "init", "-q", "--object-format=sha256")
        _write_tree(repo)
    git.add(LOCAL, ours, [ours / p for p in PATHS])
    _git_cmd(theirs, "add", *PATHS)
    _same_index(ours, theirs)


names = st.text(alphabet="abcxyz-_.", min_size=1, max_size=6).filter(lambda n: n not in (".", ".."))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(st.tuples(names, names), st.binary(max_size=64), min_size=1, max_size=8))
def test_any_small_tree_is_indexed_as_git_add_indexes_it(tmp_path_factory: pytest.TempPathFactory, files: dict) -> None:  # type: ignore[type-arg]
    base = tmp_path_factory.mktemp("tree")
    ours, theirs = _repo(base / "ours"), _repo(base / "theirs")
    for repo in (ours, theirs):
        for (folder, name), data in files.items():
            path = repo / "vars" / folder / name
            if path.parent.is_file() or path.is_dir():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    git.add(LOCAL, ours, [ours / "vars"])
    _git_cmd(theirs, "add", "vars")
    _same_index(ours, theirs)


def test_without_trusted_file_modes_executables_are_staged_as_git_stages_them(tmp_path: Path) -> None:
    ours, theirs = _both(tmp_path)
    for repo in (ours, theirs):
        _git_cmd(repo, "config", "core.fileMode", "false")
    git.add(LOCAL, ours, [ours / p for p in PATHS])
    _git_cmd(theirs, "add", *PATHS)
    _same_index(ours, theirs)
    assert _git_cmd(ours, "ls-files", "-s", "vars/shared/tool/run/value").startswith("100644 ")


def test_a_fleet_repository_below_the_top_of_its_work_tree(tmp_path: Path) -> None:
    ours, theirs = _repo(tmp_path / "ours"), _repo(tmp_path / "theirs")
    for repo in (ours, theirs):
        _write_tree(repo / "infra" / "fleet")
    sub = ours / "infra" / "fleet"
    assert git.add(LOCAL, sub, [sub / p for p in PATHS])
    _git_cmd(theirs / "infra" / "fleet", "add", *PATHS)
    _same_index(ours, theirs)
    assert "A  infra/fleet/vars/shared/tool/run/value" in _git_cmd(ours, "status", "--porcelain")


@pytest.mark.parametrize("converting", [False, True], ids=["fast", "git-add"])
def test_ignored_files_are_added_too(tmp_path: Path, converting: bool) -> None:
    ours, theirs = _both(tmp_path)
    for repo in (ours, theirs):
        (repo / ".gitignore").write_text("value\n")
        if converting:
            _git_cmd(repo, "config", "core.autocrlf", "true")
    git.add(LOCAL, ours, [ours / p for p in PATHS])
    _git_cmd(theirs, "add", "--force", *PATHS)
    _same_index(ours, theirs)
    assert "A  vars/shared/tool/run/value" in _git_cmd(ours, "status", "--porcelain")
