"""fleet_sdk.tools.git with a RecordingRunner: the exact git commands, their stdin, and what is made of
git's answers. tests/test_git.py checks the same against real git."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from fleet_sdk.errors import CommandError
from fleet_sdk.testing import RecordingRunner
from fleet_sdk.tools import git

ATTRS = ["text", "eol", "crlf", "filter", "ident", "working-tree-encoding"]


def work_tree(top: Path, algorithm: str = "sha1") -> bytes:
    return f"true\n{top}\n{algorithm}\n".encode()


def attrs(paths: list[str], value: str = "unspecified") -> bytes:
    return b"".join(f"{p}\0{a}\0{value}\0".encode() for p in paths for a in ATTRS)


def blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "vars").mkdir()
    (tmp_path / "vars" / "a").write_bytes(b"A\n")
    (tmp_path / "vars" / "b.sh").write_bytes(b"#!/bin/sh\n")
    (tmp_path / "vars" / "b.sh").chmod(0o755)
    (tmp_path / "vars" / "link").symlink_to("a")
    return tmp_path.resolve()


def test_add_of_no_paths_runs_nothing(tmp_path: Path) -> None:
    runner = RecordingRunner()
    assert git.add(runner, tmp_path, []) is False
    assert runner.calls == []


def test_add_outside_a_work_tree_asks_once_and_does_nothing(tmp_path: Path) -> None:
    runner = RecordingRunner().reply(returncode=128, stderr=b"fatal: not a git repository")
    assert git.add(runner, tmp_path, [tmp_path / "f"]) is False
    assert runner.argvs == [
        ["git", "-C", str(tmp_path), "rev-parse", "--is-inside-work-tree", "--show-toplevel", "--show-object-format"]
    ]
    assert runner.calls[0].check is False


def test_add_imports_the_blobs_and_writes_the_index_in_one_go(repo: Path) -> None:
    top = str(repo)
    paths = ["vars/a", "vars/b.sh", "vars/link"]
    runner = (
        RecordingRunner()
        .reply(stdout=work_tree(repo))
        .reply(returncode=1)  # git config: no core.autocrlf, no core.filemode
        .reply(stdout=attrs(paths))
        .reply()  # fast-import
        .reply(stdout=b"vars/a\0vars/other\0")  # ls-files: vars/other is not among the paths, so it stays
        .reply()  # update-index
    )
    assert git.add(runner, repo, [repo / p for p in paths]) is True
    assert runner.argvs == [
        ["git", "-C", top, "rev-parse", "--is-inside-work-tree", "--show-toplevel", "--show-object-format"],
        ["git", "-C", top, "config", "--get-regexp", r"^core\.(autocrlf|filemode)$"],
        ["git", "-C", top, "check-attr", "-z", "--stdin", *ATTRS],
        ["git", "-C", top, "fast-import", "--quiet", "--done"],
        ["git", "--literal-pathspecs", "-C", top, "ls-files", "-z", "--cached", "--", "vars"],
        ["git", "-C", top, "update-index", "-z", "--index-info"],
    ]
    check_attr, fast_import, update_index = runner.calls[2], runner.calls[3], runner.calls[5]
    assert [c.check for c in runner.calls] == [False, False, True, True, True, True]
    assert check_attr.input == b"vars/a\0vars/b.sh\0vars/link"
    assert fast_import.input == b"blob\ndata 2\nA\n\nblob\ndata 10\n#!/bin/sh\n\nblob\ndata 1\na\ndone\n"
    a, b_sh, link = blob(b"A\n"), blob(b"#!/bin/sh\n"), blob(b"a")  # a symlink's blob is its target
    assert (
        update_index.input
        == (f"100644 {a}\tvars/a\x00100755 {b_sh}\tvars/b.sh\x00120000 {link}\tvars/link\x00").encode()
    )
    assert all(c.timeout is None and c.env is None and c.cwd is None for c in runner.calls)
    assert runner.pending == 0


def test_add_of_a_folder_drops_index_entries_of_files_gone_from_it(repo: Path) -> None:
    (repo / "vars" / "b.sh").unlink()
    (repo / "vars" / "link").unlink()
    runner = (
        RecordingRunner()
        .reply(stdout=work_tree(repo, "sha256"))
        .reply(returncode=1)
        .reply(stdout=attrs(["vars/a"]))
        .reply()
        .reply(stdout=b"vars/a\0vars/gone\0")
        .reply()
    )
    assert git.add(runner, repo, [repo / "vars"])
    a = hashlib.sha256(b"blob 2\0A\n").hexdigest()
    assert runner.calls[-1].input == f"100644 {a}\tvars/a\x000 {'0' * 64}\tvars/gone\0".encode()


@pytest.mark.parametrize(
    ("config", "attr_value"),
    [
        (b"core.autocrlf true\n", None),
        (b"core.autocrlf input\n", None),
        (b"core.filemode false\n", None),
        (b"core.autocrlf false\ncore.filemode true\n", "set"),  # a text attribute on the paths
    ],
)
def test_add_falls_back_to_git_add_when_git_would_convert(repo: Path, config: bytes, attr_value: str | None) -> None:
    runner = RecordingRunner().reply(stdout=work_tree(repo)).reply(stdout=config)
    if attr_value is not None:
        runner.reply(stdout=attrs(["vars/a"], attr_value))
    assert git.add(runner, repo, [repo / "vars" / "a", repo / "vars" / "b.sh"])
    add = runner.calls[-1]
    assert list(add.argv) == [
        "git", "--literal-pathspecs", "-C", str(repo), "add", "--force", "--pathspec-from-file=-", "--pathspec-file-nul",
    ]  # fmt: skip
    assert add.input == b"vars/a\0vars/b.sh"
    assert len(runner.calls) == (4 if attr_value else 3)


def test_add_of_removed_files_in_a_subfolder_is_a_git_add_from_the_top(repo: Path) -> None:
    sub = repo / "sub"
    sub.mkdir()
    runner = RecordingRunner().reply(stdout=work_tree(repo))
    assert git.add(runner, sub, [sub / "gone", sub / "x" / ".." / "also-gone"])
    assert runner.argvs[0][2] == str(sub)
    assert runner.argvs[1][3:5] == [str(repo), "add"] and runner.calls[1].input == b"sub/also-gone\0sub/gone"


def test_a_failing_git_command_is_raised(repo: Path) -> None:
    runner = RecordingRunner().reply(stdout=work_tree(repo)).reply(stdout=b"core.autocrlf true\n")
    runner.reply(returncode=128, stderr=b"fatal: Unable to create index.lock")
    with pytest.raises(CommandError, match="index.lock") as info:
        git.add(runner, repo, [repo / "vars" / "a"])
    assert info.value.returncode == 128


def test_untracked_lists_others_under_the_paths(tmp_path: Path) -> None:
    runner = RecordingRunner().reply(stdout=work_tree(tmp_path)).reply(stdout=b"vars/x\0sops/y z\0")
    assert git.untracked(runner, tmp_path, ["vars", "sops"]) == [tmp_path / "vars/x", tmp_path / "sops/y z"]
    assert runner.argvs[1] == [
        "git", "--literal-pathspecs", "-C", str(tmp_path), "ls-files", "-z", "--others", "--", "vars", "sops",
    ]  # fmt: skip


def test_untracked_is_empty_outside_a_work_tree_or_without_git(tmp_path: Path) -> None:
    assert git.untracked(RecordingRunner().reply(returncode=128), tmp_path, ["vars"]) == []
    missing = RecordingRunner().fail(CommandError(["git"], 127, b"", "git is not installed"))
    assert git.untracked(missing, tmp_path, ["vars"]) == []
    timed_out = RecordingRunner().fail(CommandError(["git"], None, b""))
    with pytest.raises(CommandError):
        git.untracked(timed_out, tmp_path, ["vars"])


def test_stale_index_lock_is_a_lock_nobody_holds(tmp_path: Path) -> None:
    gitdir = tmp_path / ".git"
    gitdir.mkdir()
    runner = RecordingRunner().reply(stdout=f"{gitdir}\n".encode())
    assert git.stale_index_lock(runner, tmp_path) is None  # no lock
    assert runner.argvs == [["git", "-C", str(tmp_path), "rev-parse", "--absolute-git-dir"]]
    assert runner.calls[0].check is False
    (gitdir / "index.lock").write_bytes(b"")
    assert git.stale_index_lock(RecordingRunner().reply(stdout=f"{gitdir}\n".encode()), tmp_path) == (
        gitdir / "index.lock"
    )
    with open(gitdir / "index.lock", "rb"):  # held open: a live git command's
        assert os.path.exists(gitdir / "index.lock")
        assert git.stale_index_lock(RecordingRunner().reply(stdout=f"{gitdir}\n".encode()), tmp_path) is None


def test_stale_index_lock_is_none_without_a_repository_or_git(tmp_path: Path) -> None:
    assert git.stale_index_lock(RecordingRunner().reply(returncode=128), tmp_path) is None
    missing = RecordingRunner().fail(CommandError(["git"], 127, b""))
    assert git.stale_index_lock(missing, tmp_path) is None
