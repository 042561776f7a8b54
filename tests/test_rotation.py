"""`fleet vars rotate`: a generator's values made anew, with what derives from them only on consent, the
machines that must receive them named, and bad requests refused naming machine and generator before
anything is written (a real repository, real age keys, the CLI as a process)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fleet_sdk.errors import NoMatchingKeyError
from fleet_sdk.sops import operator_identities
from fleet_sdk.sops.document import decrypt
from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.vars.store import GeneratorId, VarsStore

from .vars_project import fleet_cli, make_project, snapshot

STACK = """
import hashlib, secrets
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine

def _random(name):
    def run(inputs, prompts, out):
        (out / name).write_text(secrets.token_hex(16))
    return run

def _cert(inputs, prompts, out):  # derived from the CA's key: stale once the CA is rotated
    (out / "c").write_text(hashlib.sha256(inputs["ca"]["key"]).hexdigest())

ca = Generator(name="ca", share=True, files=(GeneratorFile(name="key"),), python=_random("key"))
cert = Generator(name="cert", files=(GeneratorFile(name="c", secret=False),), dependencies=("ca",), python=_cert)
token = Generator(name="token", share=True, files=(GeneratorFile(name="t"),), python=_random("t"))
own = Generator(name="own", files=(GeneratorFile(name="o"),), python=_random("o"))

def build(settings):
    return Fleet(name="demo", machines=(
        Machine(name="a", generators=(ca, cert, token, own)),
        Machine(name="b", generators=(ca, cert, token, own)),
        Machine(name="c", generators=(own,)),
    ))
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root, env = make_project(tmp_path / "fleet", STACK)
    done = fleet_cli(root, env, "vars", "generate")
    assert done.returncode == 0, done.stderr.decode()
    return root, env


def changed(before: dict[str, bytes | str], after: dict[str, bytes | str]) -> set[str]:
    """The generator folders (vars/…/<gen>) whose files differ."""
    paths = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    return {"/".join(p.split("/")[: 4 if p.startswith("vars/per-machine") else 3]) for p in paths}


def value(env: dict[str, str], root: Path, gid: GeneratorId, name: str) -> bytes:
    """A secret's plaintext, decrypted with the admin's key."""
    return VarsStore(root).secret(gid, name, operator_identities({"SOPS_AGE_KEY": env["SOPS_AGE_KEY"]}))


def test_a_shared_secret_rotates_for_the_machines_sharing_it_and_nothing_else(project) -> None:  # type: ignore[no-untyped-def]
    root, env = project
    before = snapshot(root)
    old = value(env, root, GeneratorId("token", None), "t")
    done = fleet_cli(root, env, "vars", "rotate", "--shared", "token")
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "rotated token (shared)" in out
    assert "new values for machine(s) a, b:" in out and "fleet machine deploy a b" in out
    assert changed(before, snapshot(root)) == {"vars/shared/token"}
    new = value(env, root, GeneratorId("token", None), "t")
    assert new != old and len(new) == 32
    check = fleet_cli(root, env, "vars", "check")
    assert check.returncode == 0, check.stdout.decode()


def test_a_machine_generator_rotates_on_that_machine_only(project) -> None:  # type: ignore[no-untyped-def]
    root, env = project
    before = snapshot(root)
    done = fleet_cli(root, env, "vars", "rotate", "a", "own")
    assert done.returncode == 0, done.stderr.decode()
    assert "new values for machine(s) a:" in done.stdout.decode()
    assert changed(before, snapshot(root)) == {"vars/per-machine/a/own"}


def test_what_derives_from_a_rotated_value_needs_consent_and_then_follows_it(project) -> None:  # type: ignore[no-untyped-def]
    root, env = project
    before = snapshot(root)
    refused = fleet_cli(root, env, "vars", "rotate", "--shared", "ca")
    assert refused.returncode != 0
    err = refused.stderr.decode()
    assert "cert (machine a), cert (machine b)" in err and "--all-dependents" in err and "Traceback" not in err
    assert snapshot(root) == before  # refused before anything was written
    done = fleet_cli(root, env, "vars", "rotate", "--shared", "ca", "--all-dependents")
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "rotated cert (machine a) (derived from it)" in out and "rotated ca (shared)" in out
    assert changed(before, snapshot(root)) == {"vars/shared/ca", "vars/per-machine/a/cert", "vars/per-machine/b/cert"}
    key = value(env, root, GeneratorId("ca", None), "key")
    for m in ("a", "b"):  # each certificate derives from the new key
        cert = VarsStore(root).public(GeneratorId("cert", m), "c")
        assert cert is not None and cert.decode() == hashlib.sha256(key).hexdigest()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--shared", "nope"), "no machine declares a generator 'nope'"),
        (("--shared", "own"), "generator 'own' is per machine (a, b, c), not shared"),
        (("c", "token"), "machine c declares no generator 'token'; its generators are own"),
        (
            ("a", "token"),
            "generator 'token' of machine a is shared with a, b: rotate it with `fleet vars rotate --shared token`",
        ),
        (("zz", "own"), "no machine 'zz'"),
        (("a",), "name a machine and its generators"),
        (("a", "b", "--age-key"), "--age-key rotates one machine's key"),
    ],
)
def test_bad_rotations_are_refused_naming_machine_and_generator(project, args, message) -> None:  # type: ignore[no-untyped-def]
    root, env = project
    before = snapshot(root)
    done = fleet_cli(root, env, "vars", "rotate", *args)
    err = done.stderr.decode()
    assert done.returncode != 0 and message in err and "Traceback" not in err, err
    assert snapshot(root) == before


def test_a_rotated_shared_secret_never_reaches_a_machine_no_longer_sharing_it(project) -> None:  # type: ignore[no-untyped-def]
    """Rotation is what cuts a departed machine off: the new value is encrypted to the enabled
    machines declaring the generator, whatever links the old value had (no `fix` run before)."""
    root, env = project
    tree = SopsTree(root)
    key_b = tree.machine_private_key("b", [env["SOPS_AGE_KEY"]])
    folder = root / "vars/shared/token/t"
    assert decrypt((folder / "secret").read_bytes(), [key_b], "t")  # b could read the old value
    (root / "Pulumi.dev.yaml").write_text('config:\n  fleet:enabled: \'["a", "c"]\'\n')
    done = fleet_cli(root, env, "vars", "rotate", "--shared", "token")
    assert done.returncode == 0, done.stderr.decode()
    assert "new values for machine(s) a:" in done.stdout.decode()
    assert not (folder / "machines" / "b").is_symlink() and (folder / "machines" / "a").is_symlink()
    with pytest.raises(NoMatchingKeyError):
        decrypt((folder / "secret").read_bytes(), [key_b], "t")
    key_a = tree.machine_private_key("a", [env["SOPS_AGE_KEY"]])
    assert decrypt((folder / "secret").read_bytes(), [key_a], "t") == value(env, root, GeneratorId("token", None), "t")
