"""Rotating a machine's age key (`fleet vars rotate MACHINE --age-key`) without a moment in which the
machine cannot decrypt its secrets.

The machine decrypts with /var/lib/sops-nix/key.txt, which a deploy uploads from
sops/secrets/<m>-age.key; its secrets are encrypted to sops/machines/<m>/key.json. An age key file
may hold several identities, so the rotation goes through a key file holding the old and the new one:

1. prepare   a new key pair; <m>-age.key holds the old identity and the new one (the repository only)
2. upload    a deploy: the machine holds both identities; confirmed by a second deploy finding the
             machine's secrets digest current ("unchanged")
3. re-encrypt  key.json names the new key alone; every secret linked to the machine is re-keyed to it
4. deliver   a deploy: the system and secrets built from the re-keyed repository, both identities still there
5. retire    <m>-age.key holds the new identity alone; a deploy removes the old one from the machine

Every step's end is a state in which the machine decrypts both what the repository holds and what it
last received: both identities are on it from step 2 until the re-keyed secrets are on it (4). A run
that stops anywhere resumes where it stopped: steps 1-4 are read from the repository (two
identities in <m>-age.key; which key key.json names; whether the linked secrets are re-keyed), step
5's last deploy from a small record in $XDG_STATE_HOME/fleet/rotate/. Re-keying keeps each secret's
data key (sops updatekeys): whoever held the old key may have read the values; rotate those too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleet_sdk.deploy.engine import Progress as DeployProgress
from fleet_sdk.deploy.engine import deploy_machine
from fleet_sdk.deploy.model import DeployRequest
from fleet_sdk.deploy.settings import DeploySettings
from fleet_sdk.errors import DeployError, SopsError
from fleet_sdk.fs.atomic import write_atomic
from fleet_sdk.install.checkpoint import state_file
from fleet_sdk.sops import age
from fleet_sdk.sops.tree import KeyEntry, SopsTree, secret_dirs
from fleet_sdk.tools import git
from fleet_sdk.tools.runner import LOCAL, Runner
from fleet_sdk.vars.lock import repository_lock

STEPS = ("prepare", "upload", "re-encrypt", "deliver", "retire")
Deliver = Callable[[], None]  # deploys the machine as the repository holds it now; raises unless done
Progress = Callable[[str], None]


@dataclass
class AgeKeyRotation:
    machine: str
    old: str = ""  # public keys
    new: str = ""
    done: list[str] = field(default_factory=list)  # the steps this run did
    rekeyed: list[Path] = field(default_factory=list)  # secret folders re-encrypted (relative to the repository)


def rotate_age_key(
    repo: Path,
    machine: str,
    identities: list[str],
    deliver: Deliver,
    *,
    progress: Progress | None = None,
    after_step: Callable[[str], None] | None = None,
    runner: Runner = LOCAL,
) -> AgeKeyRotation:
    """Rotate `machine`'s age key (module doc). `deliver` deploys it and confirms; `after_step` is
    called with each step's name once it is done (progress, or a test stopping the run there)."""
    run = _Run(SopsTree(repo), machine, identities, deliver, progress, after_step, runner)
    with repository_lock(repo, f"fleet vars rotate {machine} --age-key"):
        run.go()
    return run.result


@dataclass
class _Run:
    tree: SopsTree
    machine: str
    identities: list[str]
    deliver: Deliver
    progress: Progress | None
    after_step: Callable[[str], None] | None
    runner: Runner

    def __post_init__(self) -> None:
        self.result = AgeKeyRotation(self.machine)
        self.record = _Record(self.tree.repo, self.machine)
        self.key_dir = self.tree.secret_dir(f"{self.machine}-age.key")

    def step(self, name: str, message: str) -> None:
        self.result.done.append(name)
        if self.progress:
            self.progress(message)
        if self.after_step:
            self.after_step(name)

    def go(self) -> None:
        held = _identities(self.tree, self.key_dir, self.machine, self.identities)
        current = self.tree.keys_of("machines", self.machine)
        if len(held) == 1 and self.record.pending() == current == [age.public_key(held[0])]:
            self.result.new = current[0]  # only the last deploy of a run that stopped is left
        elif len(held) == 1:
            held = self.prepare(held[0], current)
        if len(held) == 2:
            self.switch(held, current)
        self.deliver()
        self.record.clear()
        self.step("retire", f"the old key {self.result.old or '(of the run before)'} is gone from the machine")

    def prepare(self, old: str, current: list[str]) -> list[str]:
        if current != [age.public_key(old)]:
            raise SopsError(
                f"names {', '.join(current)}, but sops/secrets/{self.machine}-age.key holds the key of "
                f"{age.public_key(old)}; run `fleet vars fix` first",
                f"sops/machines/{self.machine}/key.json",
            )
        new, _ = age.generate()
        _write_key(self.tree, self.key_dir, [old, new], self.runner)
        self.result.old, self.result.new = age.public_key(old), age.public_key(new)
        self.step("prepare", f"new age key {self.result.new} made; the machine will hold both keys for a while")
        return [old, new]

    def switch(self, held: list[str], current: list[str]) -> None:
        """Steps 2-4, then the key file without the old identity (step 5's deploy follows)."""
        r = self.result
        r.old, r.new = age.public_key(held[0]), age.public_key(held[1])
        if current == [r.old]:
            self.deliver()
            self.step("upload", f"the machine holds its old and new keys ({r.new})")
        elif current != [r.new]:
            raise SopsError(
                f"names {', '.join(current)}, neither the old key {r.old} nor the new {r.new} of "
                f"the rotation in progress (sops/secrets/{self.machine}-age.key); restore it from git",
                f"sops/machines/{self.machine}/key.json",
            )
        r.rekeyed = _reencrypt(self.tree, self.machine, r.new, self.identities, self.runner)
        self.step("re-encrypt", f"{len(r.rekeyed)} secret(s) re-encrypted to the new key")
        self.deliver()
        self.step("deliver", "the machine received the re-encrypted secrets")
        self.record.save(r.new)
        _write_key(self.tree, self.key_dir, [held[1]], self.runner)


def _identities(tree: SopsTree, key_dir: Path, machine: str, identities: list[str]) -> list[str]:
    if not (key_dir / "secret").is_file():
        raise SopsError(
            f"machine {machine} has no age key yet; `fleet vars generate {machine}` makes one",
            f"sops/secrets/{machine}-age.key/secret",
        )
    text = tree.read_secret(key_dir, identities).decode()
    held = [line.strip() for line in text.splitlines() if line.strip().startswith("AGE-SECRET-KEY-")]
    if len(held) not in (1, 2):
        raise SopsError(
            f"holds {len(held)} age identities; expected the machine's key (or two during a rotation)",
            f"sops/secrets/{machine}-age.key/secret",
        )
    return held


def _write_key(tree: SopsTree, key_dir: Path, held: list[str], runner: Runner) -> None:
    """The machine's key file: its identities with their public keys as comments, as age-keygen writes."""
    text = "".join(f"# public key: {age.public_key(i)}\n{i}\n" for i in held)
    tree.write_secret(key_dir, text.encode(), {})  # to the same admins as before
    git.add(runner, tree.repo, [key_dir])


def _reencrypt(tree: SopsTree, machine: str, new: str, identities: list[str], runner: Runner) -> list[Path]:
    """key.json names `new` alone; every secret linked to the machine is re-keyed (idempotent)."""
    key_json = tree.member_dir("machines", machine)
    tree.write_keys("machines", machine, [KeyEntry(new)])
    changed = [key_json]
    for folder in secret_dirs(tree.repo):
        if machine in tree.machines_linked(folder) and tree.rekey(folder, identities):
            changed.append(folder)
    git.add(runner, tree.repo, changed)
    return [p.relative_to(tree.repo) for p in changed[1:]]


class _Record:
    """The one fact the repository cannot hold: the old key's last deploy is still to be done."""

    def __init__(self, repo: Path, machine: str) -> None:
        self.path = state_file("rotate", repo, machine)

    def pending(self) -> list[str] | None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        new = doc.get("retire") if isinstance(doc, dict) else None
        return [new] if isinstance(new, str) else None

    def save(self, new: str) -> None:
        write_atomic(self.path, json.dumps({"retire": new}).encode(), mode=0o600, dir_mode=0o700)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def deliver_confirmed(
    build: Callable[[], DeployRequest],
    settings: DeploySettings,
    runner: Runner = LOCAL,
    progress: DeployProgress | None = None,
) -> None:
    """Deploy the request `build` makes (from the repository as it is at the call), then confirm with
    a second deploy that finds the machine current: its secrets digest marker is the one uploaded."""
    first = deploy_machine(build(), settings, runner, progress)
    if not first.ok:
        raise DeployError(first.machine, f"the deploy of the rotation ended {first.status}: {first.error or ''}")
    again = deploy_machine(build(), settings, runner, progress)
    if again.status != "unchanged":
        raise DeployError(
            again.machine,
            f"the machine did not confirm what was uploaded (a second deploy found it {again.status}"
            f"{': ' + again.error if again.error else ''}); run the rotation again",
        )
