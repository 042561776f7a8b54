"""The Runner protocol and RecordingRunner, the stand-in every tool test uses: what it records, how it
answers, and that its errors look like LocalRunner's (redacted argv and stderr, hint, exit code)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sdk.errors import CommandError
from fleet_sdk.testing import Call, RecordingRunner
from fleet_sdk.tools.runner import LOCAL, REDACTED, CmdResult, LocalRunner, Runner


def test_local_and_recording_runners_are_runners() -> None:
    runners: list[Runner] = [LOCAL, LocalRunner(), RecordingRunner()]  # checked by mypy on the package
    assert all(callable(r.run) for r in runners)


def test_every_argument_is_recorded_as_passed() -> None:
    runner = RecordingRunner()
    result = runner.run(
        ["prog", Path("/a b"), "x"],
        input=b"in",
        cwd=Path("/w"),
        env={"K": "V"},
        timeout=5.0,
        check=False,
        secrets=["s3"],
        hint="h",
    )
    assert runner.calls == [Call(("prog", "/a b", "x"), b"in", Path("/w"), {"K": "V"}, 5.0, False, ("s3",), "h")]
    assert runner.argvs == [["prog", "/a b", "x"]]
    assert result == CmdResult(("prog", "/a b", "x"), 0, b"", b"")


def test_defaults_are_recorded_too() -> None:
    runner = RecordingRunner()
    runner.run(["prog"])
    assert runner.calls == [Call(("prog",), None, None, None, None, True, (), "")]


def test_replies_answer_commands_in_order_then_empty_success() -> None:
    runner = RecordingRunner().reply(stdout=b"one").reply(stdout=b"two", stderr=b"e")
    assert runner.pending == 2
    assert runner.run(["a"]).stdout == b"one"
    second = runner.run(["b"])
    assert (second.stdout, second.stderr, second.returncode) == (b"two", b"e", 0)
    assert runner.run(["c"]) == CmdResult(("c",), 0, b"", b"")
    assert runner.pending == 0


def test_a_failing_reply_raises_like_the_local_runner_when_checked() -> None:
    runner = RecordingRunner().reply(returncode=3, stderr=b"bad s3cret").reply(returncode=3, stderr=b"bad s3cret")
    with pytest.raises(CommandError) as info:
        runner.run(["prog", "--token=s3cret"], secrets=["s3cret"], hint="do this")
    e = info.value
    assert (e.argv, e.returncode, e.stderr) == (["prog", f"--token={REDACTED}"], 3, f"bad {REDACTED}")
    assert str(e).endswith("do this") and "s3cret" not in str(e)
    unchecked = runner.run(["prog", "--token=s3cret"], secrets=["s3cret"], check=False)
    assert (unchecked.argv, unchecked.returncode) == (("prog", f"--token={REDACTED}"), 3)
    assert runner.calls[0].argv == ("prog", "--token=s3cret")  # recorded as asked, for leak checks


def test_a_scripted_error_is_raised_as_is() -> None:
    timeout = CommandError(["prog"], None, b"", "raise the timeout")
    runner = RecordingRunner().fail(timeout)
    with pytest.raises(CommandError) as info:
        runner.run(["prog"], check=False)
    assert info.value is timeout and runner.argvs == [["prog"]]


def test_with_a_delegate_unanswered_commands_run_there() -> None:
    inner = RecordingRunner().reply(stdout=b"from inner")
    runner = RecordingRunner(delegate=inner).reply(stdout=b"scripted")
    assert runner.run(["a"]).stdout == b"scripted"
    assert runner.run(["b"], input=b"x", timeout=1.0).stdout == b"from inner"
    assert runner.argvs == [["a"], ["b"]] and inner.calls == [Call(("b",), b"x", None, None, 1.0, True, (), "")]
