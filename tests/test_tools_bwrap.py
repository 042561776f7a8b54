"""fleet_sdk.tools.bwrap with a RecordingRunner: a generator script runs as `bash -c` inside bwrap
with a cleared environment, or without the sandbox in its folder with the environment added."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sdk.errors import CommandError
from fleet_sdk.testing import RecordingRunner
from fleet_sdk.tools import bwrap

ENV = {"out": "/w/out", "PATH": "/usr/bin:/bin", "HOME": "/w"}


def test_unsandboxed_scripts_run_in_their_folder_with_the_environment(tmp_path: Path) -> None:
    runner = RecordingRunner()
    bwrap.run_script(runner, tmp_path, "echo hi > $out/x", ENV, 30.0, sandbox=False, hint="h")
    assert runner.argvs == [["bash", "-c", "echo hi > $out/x"]]
    call = runner.calls[0]
    assert (call.cwd, call.env, call.timeout, call.hint, call.input) == (tmp_path, ENV, 30.0, "h", None)


def test_sandboxed_scripts_run_in_bwrap_with_only_the_given_environment(tmp_path: Path) -> None:
    runner = RecordingRunner()
    bwrap.run_script(runner, tmp_path, "echo hi", ENV, 600.0, sandbox=True, hint="")
    [argv] = runner.argvs
    call = runner.calls[0]
    assert (call.cwd, call.env, call.timeout) == (None, None, 600.0)  # the environment goes in as --setenv
    assert argv == bwrap.argv(tmp_path, "echo hi", ENV)
    assert argv[:4] == ["bwrap", "--unshare-all", "--die-with-parent", "--clearenv"]
    assert argv[-4:] == ["--", "/bin/bash", "-c", "echo hi"]
    w = str(tmp_path)
    start = argv.index("--bind")
    assert argv[start : start + 9] == ["--bind", w, w, "--chdir", w, "--uid", "1000", "--gid", "1000"]
    setenv = argv[start + 9 : -4]
    assert setenv == ["--setenv", "HOME", "/w", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "out", "/w/out"]
    assert argv[argv.index("/usr") - 1 : argv.index("/usr") + 2] == ["--ro-bind", "/usr", "/usr"]
    assert "--share-net" not in argv  # no network


def test_a_failed_script_is_raised(tmp_path: Path) -> None:
    runner = RecordingRunner().fail(CommandError(["bwrap"], None, b"", ""))
    with pytest.raises(CommandError) as info:
        bwrap.run_script(runner, tmp_path, "sleep 9", {}, 0.1, sandbox=True, hint="")
    assert info.value.returncode is None


def test_tool_dirs_finds_each_tool_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "b"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert bwrap.tool_dirs(["a", "b", "missing"]) == ([str(tmp_path)], ["missing"])
