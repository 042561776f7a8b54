"""What `runner.run` hands back and what its errors say: the exit code, the last 20 lines of stderr
(undecodable bytes replaced, not an exception), the hint on its own line, a missing program, stdin,
cwd and an environment added to ours — with and without a timeout, which take different paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet_sdk.errors import CommandError
from fleet_sdk.tools import runner

pytestmark = pytest.mark.integration

TIMEOUTS = [None, 30.0]


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_a_failure_says_the_command_its_exit_code_and_stderrs_tail(timeout: float | None) -> None:
    script = "for i in $(seq 1 30); do echo line$i >&2; done; exit 3"
    with pytest.raises(CommandError) as info:
        runner.LOCAL.run(["sh", "-c", script], timeout=timeout, hint="install the thing")
    e = info.value
    assert e.returncode == 3
    assert e.argv == ["sh", "-c", script]
    lines = str(e).splitlines()
    assert lines[0] == f"`sh -c '{script}'` failed with exit code 3:"
    assert lines[1:21] == [f"line{i}" for i in range(11, 31)]
    assert lines[21:] == ["install the thing"]
    assert e.stderr.splitlines()[0] == "line1"  # the whole stderr stays on the error


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_a_failure_without_stderr_or_hint_is_one_line(timeout: float | None) -> None:
    with pytest.raises(CommandError) as info:
        runner.LOCAL.run(["false"], timeout=timeout)
    assert str(info.value) == "`false` failed with exit code 1"


def test_undecodable_stderr_is_replaced_not_raised() -> None:
    with pytest.raises(CommandError) as info:
        runner.LOCAL.run(["sh", "-c", r"printf 'bad \377 byte' >&2; exit 1"])
    assert info.value.stderr == "bad \ufffd byte"


def test_a_timeout_says_timed_out() -> None:
    with pytest.raises(CommandError) as info:
        runner.LOCAL.run(["sh", "-c", "echo started >&2; sleep 30"], timeout=0.5, hint="raise the timeout")
    assert info.value.returncode is None
    assert str(info.value) == "`sh -c 'echo started >&2; sleep 30'` timed out:\nstarted\nraise the timeout"


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_a_missing_program_is_exit_127_with_a_hint(timeout: float | None) -> None:
    with pytest.raises(CommandError) as info:
        runner.LOCAL.run(["fleet-no-such-program", "x"], timeout=timeout)
    assert info.value.returncode == 127
    assert str(info.value).endswith("\nfleet-no-such-program is not installed or not on PATH")
    with pytest.raises(CommandError) as info:
        runner.LOCAL.run(["fleet-no-such-program"], hint="apt install it")
    assert str(info.value).endswith("\napt install it")


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_stdin_cwd_and_added_environment_reach_the_command(tmp_path: Path, timeout: float | None) -> None:
    result = runner.LOCAL.run(
        ["sh", "-c", 'cat; pwd; echo "$FLEET_TEST_ADDED:$HOME"'],
        input=b"in\n",
        cwd=tmp_path,
        env={"FLEET_TEST_ADDED": "yes"},
        timeout=timeout,
    )
    assert result.returncode == 0
    assert result.text == f"in\n{tmp_path}\nyes:{os.environ['HOME']}\n"
    assert result.argv == ("sh", "-c", 'cat; pwd; echo "$FLEET_TEST_ADDED:$HOME"')
    assert result.stderr == b""


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_check_false_returns_the_failure(timeout: float | None) -> None:
    result = runner.LOCAL.run(["sh", "-c", "echo out; echo err >&2; exit 4"], check=False, timeout=timeout)
    assert (result.returncode, result.stdout, result.stderr) == (4, b"out\n", b"err\n")


def test_paths_in_argv_become_strings(tmp_path: Path) -> None:
    assert runner.LOCAL.run(["ls", "-d", tmp_path]).text == f"{tmp_path}\n"


def test_redact_skips_empty_secrets() -> None:
    assert runner.redact(["a-b", "c"], ["", "b"]) == ["a-***", "c"]


def test_a_command_error_without_hint_adds_nothing() -> None:
    assert str(CommandError(["x", "y"], 2, b"")) == "`x y` failed with exit code 2"
    assert str(CommandError(["x"], None, b"late\n")) == "`x` timed out:\nlate"
