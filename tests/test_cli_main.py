"""`fleet`'s entry point in this process: the options every command shares and what they say, exit 130
on Ctrl-C, one `error:` block for a user's mistake, and tracebacks only with --debug or for a bug."""

from __future__ import annotations

import argparse
import errno

import pytest
from pydantic import BaseModel, ValidationError

from fleet_sdk import cli
from fleet_sdk.errors import FleetError


class _Model(BaseModel):
    count: int


def _validation_error() -> ValidationError:
    try:
        _Model(count="many")  # type: ignore[arg-type]
    except ValidationError as e:
        return e
    raise AssertionError("pydantic accepted a bad count")


def _run_raising(monkeypatch: pytest.MonkeyPatch, error: BaseException, *extra: str) -> int:
    """Run `fleet plan` with the command replaced by one raising `error`."""
    real = cli.parser

    def parser() -> argparse.ArgumentParser:
        p = real()
        original = p.parse_args

        def parse_args(argv: object = None) -> argparse.Namespace:
            args = original(argv)  # type: ignore[arg-type]

            def run(_: argparse.Namespace) -> int:
                raise error

            args.run = run
            return args

        p.parse_args = parse_args  # type: ignore[method-assign]
        return p

    monkeypatch.setattr(cli, "parser", parser)
    return cli.main(["plan", *extra])


def test_every_command_shares_the_common_options_and_says_what_they_default_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in (["plan"], ["disko", "check"], ["vars", "generate"], ["zerotier", "admit"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*command, "--help"])
        assert exit_info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for option in ("--repo DIR", "--stack STACK", "--project DIR", "--debug"):
            assert option in text, (command, option)
        assert "the fleet repository (default: fleet:repo of the stack, .)" in text
        assert "the stack whose config and program to use (default: the project's only stack)" in text
        assert "the Pulumi project (default: nearest Pulumi.yaml)" in text
        assert "show tracebacks" in text


def test_the_top_level_help_names_the_program_and_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: fleet ")
    assert "Provision, install and deploy a fleet of Nix machines." in text
    assert "COMMAND" in text
    for command in ("plan", "disko", "vars", "zerotier"):
        assert command in text


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_ctrl_c_exits_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_raising(monkeypatch, KeyboardInterrupt()) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_a_fleet_error_is_one_error_block(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_raising(monkeypatch, FleetError("machine web: bad\nfix it")) == 1
    assert capsys.readouterr().err == "error: machine web: bad\n  fix it\n"


def test_an_empty_fleet_error_names_its_kind(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_raising(monkeypatch, FleetError("")) == 1
    assert capsys.readouterr().err == "error: FleetError\n"


def test_a_validation_error_names_the_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_raising(monkeypatch, _validation_error()) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "count" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback_of_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FleetError):
        _run_raising(monkeypatch, FleetError("bad"), "--debug")
    with pytest.raises(ValidationError):
        _run_raising(monkeypatch, _validation_error(), "--debug")
    with pytest.raises(OSError):
        _run_raising(monkeypatch, OSError(errno.EACCES, "Permission denied", "/x/y"), "--debug")


def test_a_file_error_names_the_file(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_raising(monkeypatch, OSError(errno.EACCES, "Permission denied", "/x/y")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "/x/y" in err


def test_an_os_error_naming_no_file_is_a_bug_and_shows_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OSError):
        _run_raising(monkeypatch, OSError(errno.EIO, "Input/output error"))
