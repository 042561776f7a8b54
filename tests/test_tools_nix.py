"""fleet_sdk.tools.nix with a RecordingRunner: the exact nix-instantiate and `nix copy` commands, their
environment and timeouts, and how Nix's failures become NixErrors. tests/test_nix_tool.py runs the
evaluation against the real nix-instantiate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet_sdk.errors import CommandError, FleetError, NixError
from fleet_sdk.testing import RecordingRunner
from fleet_sdk.tools import nix

EVAL = ["nix-instantiate", "--eval", "--strict", "--json", "--store", "dummy://", "--readonly-mode"]
SSHOPTS = "-o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ConnectTimeout=15"
SYSTEM = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-web1"


def test_eval_file_calls_the_file_with_its_args_and_selects_the_attribute(tmp_path: Path) -> None:
    f = tmp_path / "disko.nix"
    f.write_text("{ disks, ... }: { }")
    runner = RecordingRunner().reply(stdout=b'{"a": [1, "x"]}')
    value = nix.eval_file(runner, f, "disko.devices", args={"disks": ["/dev/sda"], "root": Path("rel")})
    assert value == {"a": [1, "x"]}
    fleet_args = json.dumps({"disks": ["/dev/sda"], "root": str(Path("rel").absolute())})
    assert runner.argvs == [
        [*EVAL, "--expr", nix._CALL_FILE, "--argstr", "file", str(f), "--argstr", "fleetArgs", fleet_args,
         "--attr", "disko.devices"],
    ]  # fmt: skip
    call = runner.calls[0]
    assert (call.timeout, call.check, call.input, call.env) == (60.0, True, None, None)


def test_eval_file_without_attribute_or_args(tmp_path: Path) -> None:
    f = tmp_path / "x.nix"
    f.write_text("1")
    runner = RecordingRunner().reply(stdout=b"1")
    assert nix.eval_file(runner, f, timeout=5) == 1
    assert runner.argvs[0][-2:] == ["fleetArgs", "{}"] and runner.calls[0].timeout == 5


def test_a_missing_file_runs_nothing(tmp_path: Path) -> None:
    runner = RecordingRunner()
    with pytest.raises(NixError, match="does not exist; check the path"):
        nix.eval_file(runner, tmp_path / "absent.nix")
    assert runner.calls == []


def test_eval_expr() -> None:
    runner = RecordingRunner().reply(stdout=b'{"b": 6}')
    assert nix.eval_expr(runner, "{ b = 2 * 3; }") == {"b": 6}
    assert runner.argvs == [[*EVAL, "--expr", "{ b = 2 * 3; }"]] and runner.calls[0].timeout == 60.0


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            CommandError(["nix-instantiate"], 127, b""),
            "nix-instantiate is not installed\ninstall Nix (Debian package nix-bin)",
        ),
        (CommandError(["nix-instantiate"], None, b""), "timed out after 7 s\ncheck the file for endless recursion"),
        (
            CommandError(
                ["nix-instantiate"],
                1,
                b"warning: unknown setting 'x'\nerror: undefined variable 'y'\n(use '--show-trace' to show detailed location information)\n",
            ),
            "undefined variable 'y'\nfix the expression so that it evaluates",
        ),
        (
            CommandError(["nix-instantiate"], 1, b""),
            "nix-instantiate failed without a message\nfix the expression so that it evaluates",
        ),
    ],
)
def test_nix_failures_become_nix_errors(error: CommandError, words: str) -> None:
    with pytest.raises(NixError) as info:
        nix.eval_expr(RecordingRunner().fail(error), "y", timeout=7)
    assert str(info.value) == f"evaluating the Nix expression 'y': {words}"


def test_output_that_is_not_json_is_a_nix_error() -> None:
    with pytest.raises(NixError, match="printed no JSON"):
        nix.eval_expr(RecordingRunner().reply(stdout=b"<LAMBDA>"), "x: x")


def test_copy_closure_to_the_target_over_ssh_ng() -> None:
    runner = RecordingRunner()
    nix.copy_closure(runner, SYSTEM, "web1.example")
    assert runner.argvs == [
        [
            "nix",
            "--extra-experimental-features",
            "nix-command",
            "copy",
            "--to",
            "ssh-ng://root@web1.example",
            "--",
            SYSTEM,
        ]
    ]
    call = runner.calls[0]
    assert call.env == {"NIX_SSHOPTS": SSHOPTS}
    assert (call.timeout, call.check, call.input, call.cwd) == (3600.0, True, None, None)
    assert "web1.example is reachable" in call.hint


def test_copy_closure_with_every_option(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    runner = RecordingRunner()
    nix.copy_closure(
        runner,
        SYSTEM,
        "deploy@[fd00::2]:2222",
        identity_file=key,
        ssh_options=("-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={tmp_path}/known_hosts"),
        scheme="ssh",
        settings={"remote-store": "local?root=/mnt", "compress": "true"},
        substitute_on_destination=True,
        check_sigs=False,
        timeout=60,
    )
    assert runner.argvs == [
        ["nix", "--extra-experimental-features", "nix-command", "copy",
         "--to", "ssh://deploy@[fd00::2]?remote-store=local%3Froot%3D%2Fmnt&compress=true",
         "--substitute-on-destination", "--no-check-sigs", "--", SYSTEM],
    ]  # fmt: skip
    assert runner.calls[0].env == {
        "NIX_SSHOPTS": f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={tmp_path}/known_hosts "
        f"-p 2222 -i {key} -o IdentitiesOnly=yes"
    }
    assert runner.calls[0].timeout == 60


def test_copy_closure_refuses_what_nix_would_misread_before_running(tmp_path: Path) -> None:
    runner = RecordingRunner()
    with pytest.raises(FleetError, match="Nix splits NIX_SSHOPTS at whitespace"):
        nix.copy_closure(runner, SYSTEM, "web1", identity_file=tmp_path / "a key")
    with pytest.raises(FleetError, match="is not a store path"):
        nix.copy_closure(runner, "nixpkgs#hello", "web1")
    with pytest.raises(FleetError, match="target host: 'root@a;b'"):
        nix.copy_closure(runner, SYSTEM, "root@a;b")
    assert runner.calls == []


def test_a_failed_copy_is_raised() -> None:
    runner = RecordingRunner().reply(returncode=1, stderr=b"error: path lacks a valid signature")
    with pytest.raises(CommandError, match="lacks a valid signature") as info:
        nix.copy_closure(runner, SYSTEM, "web1")
    assert info.value.returncode == 1


def test_store_urls() -> None:
    assert nix.store_url("web1") == "ssh-ng://root@web1"
    assert nix.store_url("admin@10.0.0.1:22", scheme="ssh", settings={"compress": "true"}) == (
        "ssh://admin@10.0.0.1?compress=true"
    )
    assert nix.store_url("fd00::1") == "ssh-ng://root@[fd00::1]"


def test_eval_flake_outputs_applies_the_function_to_all_outputs_of_the_flake() -> None:
    seen: dict[str, str] = {}

    class Looking(RecordingRunner):
        def run(self, argv, **kwargs):  # the outputs flake exists while nix runs
            seen["flake.nix"] = (
                Path(str(argv[5]).removeprefix("path:").removesuffix("#outputs")) / "flake.nix"
            ).read_text()
            return super().run(argv, **kwargs)

    runner = Looking().reply(stdout=b'{"web1": {"out": "/nix/store/x"}}')
    assert nix.eval_flake_outputs(runner, "/srv/fleet", "o: 1") == {"web1": {"out": "/nix/store/x"}}
    [argv] = runner.argvs
    folder = Path(argv[5].removeprefix("path:").removesuffix("#outputs"))
    assert argv == [
        "nix", "--extra-experimental-features", "nix-command flakes", "eval", "--json", f"path:{folder}#outputs",
        "--apply", "o: 1", "--override-input", "flake", "/srv/fleet", "--no-write-lock-file",
    ]  # fmt: skip
    assert argv == nix.flake_outputs_argv("/srv/fleet", "o: 1", folder)
    assert seen["flake.nix"] == nix.OUTPUTS_FLAKE and not folder.exists()
    assert (runner.calls[0].timeout, runner.calls[0].check, runner.calls[0].env) == (1800.0, True, None)


def test_eval_flake_outputs_failures() -> None:
    with pytest.raises(CommandError) as info:
        nix.eval_flake_outputs(RecordingRunner().reply(returncode=1, stderr=b"error: boom"), "/srv/fleet", "o: 1")
    assert nix.error_tail(info.value.stderr) == "boom"
    with pytest.raises(NixError, match="evaluating /srv/fleet: nix eval printed no JSON"):
        nix.eval_flake_outputs(RecordingRunner().reply(stdout=b"<LAMBDA>"), "/srv/fleet", "o: 1", timeout=5)


def test_error_tail_keeps_nix_s_message_from_its_error_line() -> None:
    stderr = (
        "warning: not writing modified lock file of flake 'path:/tmp/x':\n• Added input 'flake':\n"
        "error: attribute 'kernel' missing\n\n       at /nix/store/…-source/flake.nix:13:52:\n\n"
        "           13|   initrd = part m;\n(use '--show-trace' to show detailed location information)\n"
    )
    assert nix.error_tail(stderr) == (
        "attribute 'kernel' missing\n\n       at /nix/store/…-source/flake.nix:13:52:\n\n           13|   initrd = part m;"
    )
    assert nix.error_tail("\n".join(f"error: line {i}" for i in range(20)), lines=2) == "line 18\nerror: line 19"
    assert nix.error_tail("warning: only this\n") == "warning: only this"
    assert nix.error_tail("") == "nix failed without a message"
