"""Rotating a machine's age key against a machine over real ssh (a FakeTarget installed by hand): the
run is stopped after each of its steps, and in the middle of re-encrypting, and its last deploy fails
once; at every stop the machine's key file on the target opens every secret the repository encrypts
to the machine and every secret it received last. Each run resumes where the one before stopped; the
rotation ends with the new key alone on the machine and the old one opening nothing. Then the whole
rotation again as `fleet vars rotate MACHINE --age-key`, in one run. The control: re-encrypting
before the machine holds the new key (what a naive rotation does) fails the same check."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet_sdk.deploy import DeploySettings
from fleet_sdk.deploy.agekey import deliver_confirmed, rotate_age_key
from fleet_sdk.deploy.model import DeployRequest
from fleet_sdk.deploy.sources import requests_for
from fleet_sdk.errors import DeployError, NoMatchingKeyError
from fleet_sdk.sops import age
from fleet_sdk.sops.document import decrypt
from fleet_sdk.sops.tree import KeyEntry, SopsTree, secret_dirs
from fleet_sdk.stack.settings import StackSettings, load_fleet, load_stack_config
from fleet_sdk.testing import FakeFlake, FakeSystem, FakeTarget, FakeTargets, nix_env
from fleet_sdk.testing.targethost import missing_requirements
from fleet_sdk.tools.runner import LOCAL

from .test_apply_e2e import adopt_host_keys
from .vars_project import fleet_cli, make_project

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_requirements()), reason="; ".join(missing_requirements())),
]

STACK = """
import secrets
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine
from fleet_sdk.vars import stock

def _random(name):
    def run(inputs, prompts, out):
        (out / name).write_text(secrets.token_hex(16))
    return run

# uploaded before activation; read by sops-nix from the system (services); shared with a machine
# that is not deployed here
early = Generator(name="early", files=(GeneratorFile(name="e", needed_for="activation"),), python=_random("e"))
service = Generator(name="service", files=(GeneratorFile(name="s"),), python=_random("s"))
both = Generator(name="both", share=True, files=(GeneratorFile(name="b"),), python=_random("b"))

def build(settings):
    return Fleet(name="demo", machines=(
        Machine(name="web1", target_host="{target}", generators=(stock.openssh(), early, service, both)),
        Machine(name="other", generators=(both,)),
    ))
"""

KEY_FILE = "var/lib/sops-nix/key.txt"


class StoppedError(Exception):
    """The run stopped here (a kill, a lost laptop)."""


class Rig:
    """The project, the machine, and what the machine received at its last deploy."""

    def __init__(self, tmp_path: Path, target_hosts: FakeTargets) -> None:
        self.flake = FakeFlake(tmp_path / "flake", {"web1": FakeSystem(version="1")})
        self.system = self.flake.build("web1")
        self.host: FakeTarget = target_hosts.new("web1")
        self.host.install(self.system)
        self.repo, self.env = make_project(tmp_path / "fleet", textwrap.dedent(STACK).format(target=self.host.target))
        self.env["NIX_CONFIG"] = nix_env()["NIX_CONFIG"]
        (self.repo / "Pulumi.dev.yaml").write_text(f"config:\n  fleet:flake: {self.flake.ref}\n")
        self.admin = [self.env["SOPS_AGE_KEY"]]
        settings = StackSettings.from_values(load_stack_config(self.repo, "dev").values, self.repo)
        self.fleet = load_fleet(self.repo, "dev", settings)
        adopt_host_keys(self.repo, [self.host], self.env["SOPS_AGE_KEY"])
        done = fleet_cli(self.repo, self.env, "vars", "generate")
        assert done.returncode == 0, done.stderr.decode()
        self.delivered: dict[Path, bytes] = {}
        self.deploy()

    def request(self) -> DeployRequest:
        (request,) = requests_for(
            self.fleet, self.repo, ["web1"], runner=LOCAL, flake=self.flake.ref, systems={"web1": self.system},
            identity_file=self.host.client_key, identities=self.admin,
        )  # fmt: skip
        return request

    def deploy(self) -> None:
        """What `fleet vars rotate` does between steps: deploy and confirm; then the machine has the
        repository's secrets as they are (its system would carry the re-encrypted ones)."""
        deliver_confirmed(self.request, DeploySettings(), LOCAL)
        self.delivered = {d: (d / "secret").read_bytes() for d in self.linked()}

    def linked(self) -> list[Path]:
        tree = SopsTree(self.repo)
        return [d for d in secret_dirs(self.repo) if "web1" in tree.machines_linked(d)]

    def machine_identities(self) -> list[str]:
        return [(self.host.root / KEY_FILE).read_text()]

    def check(self, when: str) -> None:
        """The machine opens every secret the repository encrypts to it, and all it received last."""
        identities = self.machine_identities()
        documents = {f"{d.relative_to(self.repo)} (repository)": (d / "secret").read_bytes() for d in self.linked()}
        assert len(documents) == 4  # openssh's private key, early, service, both
        documents |= {f"{d.relative_to(self.repo)} (received)": doc for d, doc in self.delivered.items()}
        for name, document in documents.items():
            try:
                decrypt(document, identities, name)
            except NoMatchingKeyError:
                raise AssertionError(f"{when}: the machine cannot decrypt {name}") from None

    def rotate(self, stop_after: str | None = None, deliver: Callable[[], None] | None = None) -> object:
        def after(step: str) -> None:
            if step == stop_after:
                raise StoppedError(step)

        return rotate_age_key(self.repo, "web1", self.admin, deliver or self.deploy, after_step=after)


def test_the_machine_decrypts_at_every_step_of_its_age_key_rotation(
    tmp_path: Path, target_hosts: FakeTargets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    rig = Rig(tmp_path, target_hosts)
    rig.check("before")
    old = SopsTree(rig.repo).keys_of("machines", "web1")
    old_identity = rig.machine_identities()[0]
    with pytest.raises(StoppedError):
        rig.rotate(stop_after="prepare")
    rig.check("stopped after prepare")

    def unreachable() -> None:
        rig.host.stop()
        try:
            rig.deploy()
        finally:
            rig.host.start()

    with pytest.raises(DeployError):  # the upload does not get through
        rig.rotate(deliver=unreachable)
    rig.check("the upload failed")
    with pytest.raises(StoppedError):
        rig.rotate(stop_after="upload")
    rig.check("stopped after upload")
    held = [line for line in (rig.host.root / KEY_FILE).read_text().splitlines() if line.startswith("AGE-")]
    assert len(held) == 2  # the machine holds the old key and the new one

    # stopped in the middle of re-encrypting: some secrets to the new key, some still to the old
    calls = {"n": 0}
    rekey = SopsTree.rekey

    def rekey_then_stop(self: SopsTree, folder: Path, identities: list[str]) -> bool:
        calls["n"] += 1
        if calls["n"] == 3:
            raise StoppedError("re-encrypting")
        return rekey(self, folder, identities)

    with monkeypatch.context() as patched:
        patched.setattr(SopsTree, "rekey", rekey_then_stop)
        with pytest.raises(StoppedError):
            rig.rotate()
    rig.check("stopped while re-encrypting")
    for step in ("re-encrypt", "deliver"):
        with pytest.raises(StoppedError):
            rig.rotate(stop_after=step)
        rig.check(f"stopped after {step}")

    # the run goes on from the deliver step (again: stopped in it, it is done again), but its last
    # deploy (the old key leaving the machine) does not get through: the machine is down
    delivers = []

    def down() -> None:
        delivers.append(1)
        (rig.deploy if len(delivers) == 1 else unreachable)()

    with pytest.raises(DeployError):
        rig.rotate(deliver=down)
    assert len(delivers) == 2
    rig.check("the last deploy failed")
    result = rig.rotate()  # resumes with that deploy only
    assert result.done == ["retire"]  # type: ignore[attr-defined]
    rig.check("rotated")
    new = SopsTree(rig.repo).keys_of("machines", "web1")
    assert new != old and len(new) == 1
    held = [line for line in (rig.host.root / KEY_FILE).read_text().splitlines() if line.startswith("AGE-")]
    assert [age.public_key(i) for i in held] == new  # the new key alone
    for d in rig.linked():  # the old key opens nothing any more
        with pytest.raises(NoMatchingKeyError):
            decrypt((d / "secret").read_bytes(), [old_identity], str(d))

    # the whole rotation again, in one run of the command
    env = {**rig.env, "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"]}
    done = fleet_cli(
        rig.repo, env, "vars", "rotate", "web1", "--age-key", "--system", rig.system, "-i", str(rig.host.client_key)
    )
    assert done.returncode == 0, done.stderr.decode()
    assert "age key rotated to" in done.stdout.decode() and new[0] in done.stdout.decode()
    newest = SopsTree(rig.repo).keys_of("machines", "web1")
    assert newest != new
    rig.delivered = {}
    rig.check("rotated by the command")
    held = [line for line in (rig.host.root / KEY_FILE).read_text().splitlines() if line.startswith("AGE-")]
    assert [age.public_key(i) for i in held] == newest
    checked = fleet_cli(rig.repo, rig.env, "vars", "check")
    assert checked.returncode == 0, checked.stdout.decode()

    # the control: secrets re-encrypted to a key the machine does not hold yet
    tree = SopsTree(rig.repo)
    tree.write_keys("machines", "web1", [KeyEntry(age.generate()[1])])
    for d in rig.linked():
        tree.rekey(d, rig.admin)
    with pytest.raises(AssertionError, match="cannot decrypt"):
        rig.check("naive")
