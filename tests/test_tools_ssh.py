"""fleet_sdk.tools.ssh with a RecordingRunner: the exact ssh command, the script on stdin (never in
argv), the timeout, and targets refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sdk.errors import CommandError, FleetError
from fleet_sdk.targets import TargetHost
from fleet_sdk.testing import RecordingRunner
from fleet_sdk.tools import ssh

OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=15"]


def test_run_script_sends_the_script_on_stdin() -> None:
    runner = RecordingRunner().reply(stdout=b"admitted\n")
    assert ssh.run_script(runner, "web1.example", "echo $SECRET\n").text == "admitted\n"
    assert runner.argvs == [["ssh", *OPTIONS, "--", "root@web1.example", "sh", "-s"]]
    call = runner.calls[0]
    assert (call.input, call.timeout, call.hint, call.check, call.env) == (
        b"echo $SECRET\n", 120, "on web1.example", True, None,
    )  # fmt: skip


def test_run_script_with_port_identity_and_timeout(tmp_path: Path) -> None:
    runner = RecordingRunner()
    ssh.run_script(runner, "admin@[fd00::2]:2222", "true", tmp_path / "key", timeout=5)
    assert runner.argvs == [
        ["ssh", *OPTIONS, "-p", "2222", "-i", str(tmp_path / "key"), "-o", "IdentitiesOnly=yes",
         "--", "admin@fd00::2", "sh", "-s"],
    ]  # fmt: skip
    assert runner.calls[0].timeout == 5


def test_options_start_from_the_given_base() -> None:
    t = TargetHost.parse("web1:2200")
    assert ssh.options(t, None, ("-o", "StrictHostKeyChecking=yes")) == [
        "-o",
        "StrictHostKeyChecking=yes",
        "-p",
        "2200",
    ]
    assert ssh.options(TargetHost.parse("web1")) == OPTIONS


def test_a_bad_target_runs_nothing() -> None:
    runner = RecordingRunner()
    with pytest.raises(FleetError, match="target host: 'root@a;b'"):
        ssh.run_script(runner, "root@a;b", "true")
    assert runner.calls == []


def test_a_failed_script_is_raised_with_the_target() -> None:
    runner = RecordingRunner().reply(returncode=255, stderr=b"ssh: connect to host web1 port 22: Connection refused")
    with pytest.raises(CommandError, match="Connection refused") as info:
        ssh.run_script(runner, "web1", "true")
    assert info.value.returncode == 255 and str(info.value).endswith("on web1")
