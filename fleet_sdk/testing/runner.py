"""A Runner for tests: records every command and answers from a script instead of running it.

from fleet_sdk.testing import RecordingRunner
runner = RecordingRunner().reply(stdout=b"true\\n/repo\\nsha1\\n")
git.add(runner, repo, [repo / "f"])
assert runner.calls[0].argv[:3] == ("git", "-C", str(repo))

Replies are used in order, one per command; with none left a command succeeds with no output, or
runs on `delegate` when one is given (to record what a real run did). A reply with a non-zero exit
code raises CommandError when the command is checked, with argv and stderr redacted, as LocalRunner.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.errors import CommandError
from fleet_sdk.tools.runner import REDACTED, CmdResult, Runner, redact


@dataclass(frozen=True)
class Call:
    """One command as the code under test asked for it (argv unredacted, env as passed)."""

    argv: tuple[str, ...]
    input: bytes | None
    cwd: Path | None
    env: dict[str, str] | None
    timeout: float | None
    check: bool
    secrets: tuple[str, ...]
    hint: str


@dataclass(frozen=True)
class Reply:
    returncode: int = 0
    stdout: bytes = b""
    stderr: bytes = b""


class RecordingRunner:
    def __init__(self, delegate: Runner | None = None) -> None:
        self.calls: list[Call] = []
        self.delegate = delegate
        self._replies: deque[Reply | BaseException] = deque()

    def reply(self, stdout: bytes = b"", stderr: bytes = b"", returncode: int = 0) -> RecordingRunner:
        """Answer the next unanswered command with this output and exit code."""
        self._replies.append(Reply(returncode, stdout, stderr))
        return self

    def fail(self, error: BaseException) -> RecordingRunner:
        """Raise `error` for the next unanswered command (e.g. a CommandError with returncode None,
        a timeout, or 127, a program that is not installed)."""
        self._replies.append(error)
        return self

    @property
    def argvs(self) -> list[list[str]]:
        return [list(c.argv) for c in self.calls]

    @property
    def pending(self) -> int:
        """Replies not used yet: a test that scripted more commands than ran can assert it is 0."""
        return len(self._replies)

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        input: bytes | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = True,
        secrets: Sequence[str] = (),
        hint: str = "",
    ) -> CmdResult:
        args = tuple(str(a) for a in argv)
        self.calls.append(
            Call(args, input, cwd, None if env is None else dict(env), timeout, check, tuple(secrets), hint)
        )
        if not self._replies and self.delegate is not None:
            return self.delegate.run(
                argv, input=input, cwd=cwd, env=env, timeout=timeout, check=check, secrets=secrets, hint=hint
            )
        scripted = self._replies.popleft() if self._replies else Reply()
        if isinstance(scripted, BaseException):
            raise scripted
        shown = redact(args, secrets)
        if check and scripted.returncode != 0:
            raise CommandError(shown, scripted.returncode, _redact(scripted.stderr, secrets), hint)
        return CmdResult(tuple(shown), scripted.returncode, scripted.stdout, scripted.stderr)


def _redact(data: bytes, secrets: Sequence[str]) -> bytes:
    for s in secrets:
        if s:
            data = data.replace(s.encode(), REDACTED.encode())
    return data
