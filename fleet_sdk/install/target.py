"""The server being installed, over ssh: wait for it to answer (with a deadline), read its facts, and
learn which host key it presented.

Before the install a server's host key is not known (a fresh cloud image makes its own), so the first
connections accept any key, as nixos-anywhere does — but into a private known_hosts file of their
own, which then holds the key the server proved it has: the machine's key from vars means this is
the machine, installed already (adopt it); any other key means it is not. After the reboot into the
installed system the check is strict: the key from vars, or no connection.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.errors import CommandError, HostKeyMismatchError, TargetUnreachableError
from fleet_sdk.install.model import MARKER, TargetFacts
from fleet_sdk.targets import TargetHost
from fleet_sdk.tools.runner import CmdResult, Runner

UNREACHABLE = 255
# ed25519 first, so a server with one presents it (the kind the vars hold); others still connect
HOST_KEY_ALGORITHMS = "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256"
MISMATCH = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED")

# nixos-anywhere's get-facts.sh, the part we decide on (reference/deploy.md §1 row 2)
FACTS_SCRIPT = f"""set -u
if [ -r /etc/os-release ]; then . /etc/os-release; fi
printf 'os=%s\\n' "${{ID:-}}"
printf 'variant=%s\\n' "${{VARIANT_ID:-}}"
if [ -e /run/current-system ]; then printf 'system=%s\\n' "$(readlink -f /run/current-system)"; fi
if [ -r {MARKER} ]; then printf 'marker=%s\\n' "$(tr -d '\\n' < {MARKER})"; fi
"""


def fingerprint(key_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line ("ssh-ed25519 AAAA… [comment]")."""
    blob = base64.b64decode(key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def key_fields(key_line: str) -> str:
    """The "type base64" of a public key or known_hosts line, without host patterns or comment."""
    fields = key_line.split()
    for i, f in enumerate(fields[:-1]):
        if f.startswith(("ssh-", "ecdsa-", "sk-")):
            return f"{f} {fields[i + 1]}"
    return ""


def parse_facts(text: str, host_key: str = "") -> TargetFacts:
    values = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
    try:
        marker = json.loads(values.get("marker", "") or "{}")
    except ValueError:
        marker = {}
    return TargetFacts(
        os=values.get("os", ""),
        variant=values.get("variant", ""),
        system=values.get("system", ""),
        marker=marker if isinstance(marker, dict) else {},
        host_key=host_key,
    )


@dataclass
class Link:
    """ssh to one server for its install. `seen` is the private known_hosts file of the connections
    that accept any key; `strict` the one with the machine's key, for after the reboot."""

    runner: Runner
    machine: str
    target: TargetHost
    identity_file: Path | None
    seen: Path
    strict: Path
    connect_timeout: int = 10
    poll: float = 5.0
    sleep: Callable[[float], None] = time.sleep

    def options(self, strict: bool) -> list[str]:
        known = self.strict if strict else self.seen
        base = [
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", f"StrictHostKeyChecking={'yes' if strict else 'accept-new'}",
            "-o", f"UserKnownHostsFile={known}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "UpdateHostKeys=no",
            "-o", f"HostKeyAlgorithms={HOST_KEY_ALGORITHMS}",
            "-o", "ControlMaster=no",
            "-o", "ControlPath=none",
        ]  # fmt: skip
        # the deploy key first, but not only it (no IdentitiesOnly): an installed machine being
        # adopted may let in only the operator's own keys
        base += ["-p", str(self.target.port)] if self.target.port else []
        return base + (["-i", str(self.identity_file)] if self.identity_file else [])

    def argv(self, command: Sequence[str], strict: bool) -> list[str]:
        remote = [shlex.quote(c) for c in command]
        return ["ssh", *self.options(strict), "--", f"{self.target.user}@{self.target.host}", *remote]

    def attempt(
        self, command: Sequence[str], *, strict: bool, input: bytes | None = None, timeout: float = 60
    ) -> CmdResult | None:
        """`command`'s result, or None when no connection was made. A strict connection refused for
        its host key raises HostKeyMismatchError: that is an answer, and waiting will not change it."""
        if not strict:
            self.seen.write_text("")  # only the key of this connection
        try:
            result = self.runner.run(
                self.argv(command, strict), input=input, timeout=timeout, check=False, hint=f"on {self.machine}"
            )
        except CommandError as e:
            if e.returncode is None:  # timed out
                return None
            raise
        if result.returncode == UNREACHABLE:
            err = result.stderr.decode(errors="replace")
            if strict and any(m in err for m in MISMATCH):
                raise HostKeyMismatchError(
                    self.machine,
                    f"{self.target} presented an ssh host key other than the machine's "
                    f"(vars openssh/ssh.id_ed25519.pub); the install did not end on the system with its "
                    "keys, or the address belongs to another server. Check the address and the vars",
                )
            return None
        return result

    def facts(self, *, strict: bool = False) -> TargetFacts | None:
        result = self.attempt(["sh", "-s"], strict=strict, input=FACTS_SCRIPT.encode())
        if result is None:
            return None
        presented = "" if strict else _first_key(self.seen)
        return parse_facts(result.text, presented)

    def wait(self, deadline: float, what: str, *, strict: bool = False) -> TargetFacts:
        """Poll until the server answers (`deadline` seconds at most), then its facts."""
        end = time.monotonic() + deadline
        while True:
            found = self.facts(strict=strict)
            if found is not None:
                return found
            if time.monotonic() + self.poll > end:
                raise TargetUnreachableError(
                    self.machine,
                    f"no answer over ssh from {self.target} within {deadline:g} s ({what}). A new server "
                    "takes a minute or two to boot: check the address, that it is up and that it lets the "
                    "deploy key in, or give it longer (--timeout)",
                )
            self.sleep(self.poll)


def _first_key(known_hosts: Path) -> str:
    try:
        lines = known_hosts.read_text().splitlines()
    except FileNotFoundError:
        return ""
    return next((key_fields(line) for line in lines if key_fields(line)), "")
