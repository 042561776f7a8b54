"""A failed command's error never carries a secret: not in its argv, its stderr, or its message,
whether it failed, timed out or was not found."""

from __future__ import annotations

import shlex

import pytest

from fleet_sdk.errors import CommandError
from fleet_sdk.tools.runner import LOCAL, REDACTED

pytestmark = pytest.mark.integration

SECRET = "hunter2-PLAINTEXT-token"


def text_of(e: CommandError) -> str:
    return "\n".join([str(e), shlex.join(e.argv), e.stderr])


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_a_failed_command_redacts_argv_and_stderr(timeout: float | None) -> None:
    with pytest.raises(CommandError) as info:
        LOCAL.run(
            ["sh", "-c", 'echo "bad token $1" >&2; exit 3', "sh", f"--token={SECRET}"],
            secrets=[SECRET],
            timeout=timeout,
        )
    e = info.value
    assert SECRET not in text_of(e)
    assert e.returncode == 3 and f"--token={REDACTED}" in e.argv and f"bad token --token={REDACTED}" in e.stderr


def test_a_timed_out_command_redacts_too() -> None:
    with pytest.raises(CommandError) as info:
        LOCAL.run(["sh", "-c", 'echo "$1" >&2; sleep 30', "sh", SECRET], secrets=[SECRET], timeout=0.5)
    assert info.value.returncode is None and "timed out" in str(info.value)
    assert SECRET not in text_of(info.value) and REDACTED in info.value.stderr


def test_a_missing_program_redacts_its_argv() -> None:
    with pytest.raises(CommandError) as info:
        LOCAL.run(["no-such-program-here", SECRET], secrets=[SECRET])
    assert info.value.returncode == 127 and SECRET not in text_of(info.value)


def test_a_successful_results_argv_is_redacted_and_its_output_kept() -> None:
    result = LOCAL.run(["sh", "-c", 'printf %s "$1"', "sh", SECRET], secrets=[SECRET])
    assert SECRET not in " ".join(result.argv) and result.stdout == SECRET.encode()
