"""The exception tree: every error fleet_sdk raises on purpose is a FleetError, defined here, so a
consumer catches one root and the CLI prints any of them as one `error:` block without a traceback.
Every message names what it is about and says what to do.

FleetError
 ├── SpecError               a fleet declaration that cannot work (names machine / field)
 ├── ConfigError             stack configuration (Pulumi.<stack>.yaml, -c overrides)
 │    └── CloudSecretError   a provider credential named in stack config; its subclasses
 │                           SecretNameError, SecretNotFoundError, SecretLockedError
 ├── StackError              a stack program that cannot be loaded
 │    └── DuplicateUrnError  two resources under one URN
 ├── SopsError               sops documents and the sops/ key tree (names the file); its subclasses
 │                           NotSopsDocumentError, NoMatchingKeyError, TamperedError, MacMismatchError,
 │                           UnknownRecipientError, EmptySecretError, NoAdminKeyError, BrokenMemberError
 ├── MachineKeyChangedError  a machine's key.json swapped under its secrets
 ├── DiskoError              a disko layout, with its Problems; PartitionPlanError, PartitionFailedError
 ├── LockError, GeneratorError, PromptError, VarValueError, VarsWriteError, StoreLayoutError,
 │   DamagedStoreError, DeployKeyMissingError: the vars store and the commands that fill it
 ├── ZeroTierError           ZeroTier identities and network ids
 ├── DeployError             one machine's deploy; TargetUnreachableError, DeployLockedError, …
 ├── InstallError            one machine's install; WipeRefusedError, HostKeyMismatchError
 └── CommandError, NixError, SgdiskError: external programs (fleet_sdk.tools)

`file_error_message` turns the OSError or UnicodeDecodeError of a file that cannot be read or written
into the same kind of one-line message, for the CLI.
"""

from __future__ import annotations

import errno
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from types import TracebackType

from typing_extensions import override


class FleetError(Exception):
    """Root of every error fleet_sdk raises on purpose; the CLI prints these without a traceback."""


class SpecError(FleetError):
    """A fleet declaration that is refused before anything is created.

    Holds one or more problems, each already naming the machine or instance and the field.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ConfigError(FleetError):
    """Stack configuration that is missing or malformed."""


class CloudSecretError(ConfigError):
    """A provider credential named in stack config that cannot be used; names the key and the secret."""


class SecretNameError(CloudSecretError):
    """The configured value cannot name a clan secret."""


class SecretNotFoundError(CloudSecretError):
    """No sops/secrets/<name>/secret in the fleet repository."""


class SecretLockedError(CloudSecretError):
    """The secret exists, but none of the operator's age keys opens it."""


class StackError(FleetError):
    """A stack program under stacks/ that is missing or does not build a Fleet."""


class DuplicateUrnError(StackError):
    """The stack program registered two resources under one URN, which `pulumi up` refuses (the mock
    runtime of `fleet plan` would accept it silently)."""

    def __init__(self, urns: list[str]) -> None:
        self.urns = urns
        super().__init__(
            f"URNs registered twice: {', '.join(urns)}; `pulumi up` would refuse the stack. Two resources "
            "of one type have one name under one parent (e.g. a resource the stack program creates with a "
            "name fleet_sdk uses too): rename one of them. If neither is yours, it is a bug of fleet_sdk: "
            "please report it with this message"
        )


# sops documents and the sops/ key tree


class SopsError(FleetError):
    """Root of everything that goes wrong reading or writing sops documents and keys."""

    def __init__(self, message: str, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class NotSopsDocumentError(SopsError):
    """Not JSON, no `sops` metadata, or no `data` value."""


class NoMatchingKeyError(SopsError):
    """None of the identities can decrypt the data key (wrong or missing key)."""


class TamperedError(SopsError):
    """A value or the MAC failed AES-GCM authentication: the file was changed or corrupted."""


class MacMismatchError(SopsError):
    """The decrypted MAC does not match the plaintext."""


class UnknownRecipientError(SopsError):
    """A recipient that is neither an age X25519 key nor an ssh-ed25519/ssh-rsa public key."""


class EmptySecretError(SopsError):
    """Empty plaintext: sops leaves it unencrypted and clan treats it as 'open an editor'."""


class NoAdminKeyError(SopsError):
    """No operator age identity, or none that matches a user of sops/users/."""


class BrokenMemberError(SopsError):
    """A member symlink of a secret that points nowhere."""


class MachineKeyChangedError(FleetError):
    """A machine's key.json no longer holds the key its secrets are encrypted to."""


# disko layouts


@dataclass(frozen=True)
class Problem:
    """Something that would fail at install or boot: where (the node path) and what to do. A
    DiskoError carries them; the disko checks return them."""

    path: str
    message: str

    @override
    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class DiskoError(FleetError):
    """A disko configuration that does not even parse (what disko refuses at evaluation)."""

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = problems
        head = f"{source}: " if source else ""
        super().__init__(head + "invalid disko layout:\n  " + "\n  ".join(map(str, problems)))


class PartitionPlanError(DiskoError):
    """The table cannot be made: a partition does not fit or the disk has no such table."""


class PartitionFailedError(DiskoError):
    """One partition that sgdisk would refuse (key of the partition, reason). The planners catch it
    and report the partition under its full node path, which only they know."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__([Problem(key, reason)])
        self.key, self.reason = key, reason


# the vars store and the commands that fill it


class LockError(FleetError):
    """The repository lock cannot be taken: another writer holds it too long, or it cannot be created."""


class GeneratorError(FleetError):
    """A generator failed or did not produce what it declares; nothing of it was stored."""


class PromptError(FleetError):
    """A generator prompt that gets no value (no terminal and none given), entries that did not match,
    or a prompts file that cannot be used."""


class VarValueError(FleetError):
    """A value `fleet vars set` refuses; nothing was stored."""


class VarsWriteError(FleetError):
    """The store could not be written (a full disk, a read-only or unwritable folder)."""


class StoreLayoutError(FleetError):
    """An internal error: a generator id or file name that is not one plain path component (the
    spec refuses such names; the store refuses them again rather than touch another folder)."""


class DamagedStoreError(FleetError):
    """Something other than a file where the store keeps one (a folder, a link loop, a file where a
    folder should be): never read as "not generated", which would regenerate over it."""


class DeployKeyMissingError(FleetError):
    """`pulumi up` with cloud machines but no deploy key to let in."""


class ZeroTierError(FleetError):
    """A ZeroTier identity or network id that is malformed or cannot be used, or an identity search
    that found none."""


_REASONS = {
    errno.EISDIR: "is a folder where a file should be",
    errno.ENOTDIR: "a file stands where a folder should be on this path",
    errno.ELOOP: "is a symbolic link loop",
    errno.EACCES: "permission denied (check owner and mode)",
    errno.EPERM: "operation not permitted (check owner, mode, and `lsattr` for the immutable flag)",
    errno.ENOENT: "does not exist",
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "is on a read-only file system",
}


def file_error_message(exc: BaseException) -> str | None:
    """`<file>: <what is wrong>; …` for an OSError that names a file, or a UnicodeDecodeError raised
    while reading one; None for anything else, which is a bug and should show its traceback."""
    if isinstance(exc, OSError) and exc.filename is not None:
        where = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {os.fsdecode(exc.filename2)}"
        reason = _REASONS.get(exc.errno or 0) or exc.strerror or type(exc).__name__
        return f"{where}: {reason}; repair it (or restore it from git) and run the command again"
    if isinstance(exc, UnicodeDecodeError):
        path = _file_being_read(exc.__traceback__)
        if path is None:
            return None
        byte = exc.object[exc.start] if exc.start < len(exc.object) else 0
        return (
            f"{path}: not UTF-8 text (byte 0x{byte:02x} at offset {exc.start}); "
            "repair it (or restore it from git) and run the command again"
        )
    return None


def _file_being_read(tb: TracebackType | None) -> str | None:
    """The file whose bytes failed to decode: pathlib's `read_text` receiver, else the `path` variable
    of the innermost fleet_sdk frame that has one (readers name the file they read `path`), if that
    file indeed is not UTF-8; None when no file can be blamed (then it is a bug)."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        receiver = frame.f_locals.get("self")
        if frame.f_code.co_name == "read_text" and isinstance(receiver, PurePath):
            return str(receiver)
        path = frame.f_locals.get("path")
        if str(frame.f_globals.get("__name__", "")).startswith("fleet_sdk") and isinstance(path, PurePath | str):
            return str(path) if _not_utf8(str(path)) else None
    return None


def _not_utf8(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.read().decode()
    except UnicodeDecodeError:
        return True
    except OSError:
        return False
    return False


# tools


class CommandError(FleetError):
    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: bytes, hint: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.decode(errors="replace")
        tail = "\n".join(self.stderr.strip().splitlines()[-20:])
        status = "timed out" if returncode is None else f"failed with exit code {returncode}"
        message = f"`{shlex.join(self.argv)}` {status}" + (f":\n{tail}" if tail else "")
        super().__init__(message + (f"\n{hint}" if hint else ""))


class NixError(FleetError):
    """Nix could not evaluate a file or expression; carries the start of Nix's error message."""

    def __init__(self, subject: str, nix_message: str, advice: str) -> None:
        self.subject = subject
        self.nix_message = nix_message
        super().__init__(f"{subject}: {nix_message}\n{advice}" if nix_message else f"{subject}\n{advice}")


class SgdiskError(FleetError):
    """A partition table request that cannot work before sgdisk runs, or sgdisk output we cannot read."""


# deploy


class DeployError(FleetError):
    """A deploy of one machine that could not run or did not end on the new system; the message
    names the machine and what to do. `machine` is its name."""

    def __init__(self, machine: str, message: str) -> None:
        self.machine = machine
        super().__init__(f"machine {machine}: {message}")


class TargetUnreachableError(DeployError):
    """No SSH connection to the machine (refused, timed out, or its host key did not match)."""


class DeployLockedError(DeployError):
    """Another deploy (or a switch-to-configuration) holds the machine; nothing was changed."""


class SudoPasswordError(DeployError):
    """The admin user of a machine needs a password for sudo, which a deploy cannot give."""


class NotASystemError(DeployError):
    """The store path to deploy is not a system closure of the machine's kind."""


# install


class InstallError(FleetError):
    """An install of one machine that could not run or did not end on its system; names the machine."""

    def __init__(self, machine: str, message: str) -> None:
        self.machine = machine
        super().__init__(f"machine {machine}: {message}")


class WipeRefusedError(InstallError):
    """An install would wipe a machine that already runs NixOS (its own or another's); nothing was run."""


class HostKeyMismatchError(InstallError):
    """The installed machine presented an ssh host key other than the one in its vars."""


# closure probe


class ClosureProbeError(FleetError):
    """Machines' systems that do not evaluate. `failures` maps each machine to the tail of Nix's error
    message (machines with the same message are named together); `machine` is the first of them."""

    def __init__(self, failures: dict[str, str], flake: str) -> None:
        self.failures = dict(failures)
        self.machine = next(iter(self.failures))
        by_message: dict[str, list[str]] = {}
        for machine, message in self.failures.items():
            by_message.setdefault(message, []).append(machine)
        blocks = []
        for message, names in by_message.items():
            one = len(names) == 1
            who = f"machine {names[0]}: its system does" if one else f"machines {', '.join(names)}: their systems do"
            blocks.append(
                f"{who} not evaluate:\n" + "\n".join(f"  {line}" if line else "" for line in message.splitlines())
            )
        super().__init__(
            "\n".join(blocks) + f"\nfix the configuration in the flake {flake}; `nix eval --show-trace` of the "
            "machine's toplevel shows the whole trace"
        )


class ClosureUnknownError(FleetError):
    """`pulumi up` would deploy a machine whose system closure the probe could not tell."""

    def __init__(self, machine: str, reason: str) -> None:
        self.machine = machine
        super().__init__(
            f"machine {machine!r}: its system is unknown ({reason}); `pulumi up` deploys only a known "
            "system: run it where the stack's flake (fleet:flake) evaluates, or set fleet:closureProbe=false "
            "to deploy on the flake's source fingerprint"
        )
