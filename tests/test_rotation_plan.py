"""The day-two pieces in-process (the CLI tests run them in a subprocess): what a rotation selects
(vars.rotate.plan_rotation, rotate), which machines a shared secret loses (vars.scoping.revoke,
owner_of) and gains back (vars.access.grant_shared), on a repository generated with real age keys."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.errors import NoMatchingKeyError, SpecError
from fleet_sdk.sops.document import decrypt
from fleet_sdk.sops.tree import KeyEntry, SopsTree
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine
from fleet_sdk.vars.access import grant_shared, lacking
from fleet_sdk.vars.generate import GenerateOptions, generate
from fleet_sdk.vars.rotate import plan_rotation, rotate
from fleet_sdk.vars.scoping import Revoked, owner_of, revoke
from fleet_sdk.vars.store import GeneratorId, VarsStore


def _random(name: str):  # type: ignore[no-untyped-def]
    def run(inputs: dict[str, dict[str, bytes]], prompts: dict[str, str], out: Path) -> None:
        (out / name).write_text(secrets.token_hex(8))

    return run


def _cert(inputs: dict[str, dict[str, bytes]], prompts: dict[str, str], out: Path) -> None:
    (out / "c").write_bytes(inputs["ca"]["key"][::-1])


CA = Generator(name="ca", share=True, files=(GeneratorFile(name="key"),), python=_random("key"))
CERT = Generator(name="cert", files=(GeneratorFile(name="c", secret=False),), dependencies=("ca",), python=_cert)
TOKEN = Generator(name="token", share=True, files=(GeneratorFile(name="t"),), python=_random("t"))
OWN = Generator(name="own", files=(GeneratorFile(name="o"),), python=_random("o"))
FLEET = Fleet(
    name="demo",
    machines=(
        Machine(name="a", generators=(CA, CERT, TOKEN, OWN)),
        Machine(name="b", generators=(CA, CERT, TOKEN, OWN)),
        Machine(name="c", generators=(OWN,)),
    ),
)


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    private, public = sops.generate()
    SopsTree(tmp_path).write_keys("users", "admin", [KeyEntry(public)])
    generate(tmp_path, FLEET, GenerateOptions(identities=[private]))
    return tmp_path, private


def test_a_shared_rotation_selects_the_generator_its_dependents_and_the_machines_receiving_them(repo) -> None:  # type: ignore[no-untyped-def]
    root, _ = repo
    store = VarsStore(root)
    plan = plan_rotation(store, FLEET, None, ["ca", "ca"])
    assert plan.requested == (GeneratorId("ca", None),)
    assert plan.dependents == (GeneratorId("cert", "a"), GeneratorId("cert", "b"))
    assert plan.machines == ("a", "b") and plan.scope == ("a", "b")
    token = plan_rotation(store, FLEET, None, ["token"])
    assert (token.dependents, token.machines) == ((), ("a", "b"))
    own = plan_rotation(store, FLEET, "c", ["own"])
    assert (own.requested, own.dependents, own.machines, own.scope) == ((GeneratorId("own", "c"),), (), ("c",), ("c",))
    # a disabled machine declaring it receives nothing
    assert plan_rotation(store, FLEET.with_enabled(["a", "c"]), None, ["token"]).machines == ("a",)


@pytest.mark.parametrize(
    ("machine", "names", "message"),
    [
        (None, [], "name the generator to rotate"),
        (None, ["nope"], "no machine declares a generator 'nope'"),
        (None, ["own"], "generator 'own' is per machine (a, b, c), not shared"),
        ("c", ["token"], "machine c declares no generator 'token'; its generators are own"),
        ("a", ["token"], "generator 'token' of machine a is shared with a, b"),
        ("zz", ["own"], "no machine 'zz'"),
    ],
)
def test_bad_rotations_are_refused(repo, machine, names, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError) as refused:
        plan_rotation(VarsStore(repo[0]), FLEET, machine, names)
    assert message in str(refused.value)


def test_rotate_needs_consent_for_dependents_then_regenerates_them(repo) -> None:  # type: ignore[no-untyped-def]
    root, private = repo
    store = VarsStore(root)
    before = store.secret(GeneratorId("ca", None), "key", [private])
    options = GenerateOptions(identities=[private])
    with pytest.raises(SpecError, match=r"cert \(machine a\), cert \(machine b\).*--all-dependents"):
        rotate(root, FLEET, None, ["ca"], options=options)
    assert store.secret(GeneratorId("ca", None), "key", [private]) == before
    plan, result = rotate(root, FLEET, None, ["ca"], all_dependents=True, options=options)
    assert set(result.generated) == {GeneratorId("ca", None), *plan.dependents}
    key = store.secret(GeneratorId("ca", None), "key", [private])
    assert key != before and store.public(GeneratorId("cert", "b"), "c") == key[::-1]


def test_owner_of_names_the_machine_whose_own_secret_a_folder_holds() -> None:
    assert owner_of(Path("vars/per-machine/m1/gen")) == "m1"
    assert owner_of(Path("vars/per-machine/m1/gen/file")) == "m1"
    assert owner_of(Path("vars/shared/zerotier-identity-m2/identity-secret")) == "m2"
    assert owner_of(Path("vars/shared/token/t")) is None
    assert owner_of(Path("sops/secrets/m3-age.key")) == "m3"


def test_revoke_unlinks_exactly_the_departed_machines_and_grant_links_them_back(repo) -> None:  # type: ignore[no-untyped-def]
    root, private = repo
    tree, store = SopsTree(root), VarsStore(root)
    folder = store.file_dir(GeneratorId("token", None), "t")
    key_b = tree.machine_private_key("b", [private])
    assert revoke(tree, folder, "token", {"a", "b"}) == []
    assert revoke(tree, folder, "token", {"a"}) == [Revoked("b", "token", Path("vars/shared/token/t"))]
    assert sorted(p.name for p in (folder / "machines").iterdir()) == ["a"]
    tree.rekey(folder, [private])
    with pytest.raises(NoMatchingKeyError):
        decrypt((folder / "secret").read_bytes(), [key_b], "t")
    # enabled again (it always was in FLEET): the access pass links it and re-keys
    assert lacking(store, FLEET, ["b"]) == [(folder, ["b"])]
    assert lacking(store, FLEET.with_enabled(["a", "c"]), ["b"]) == []  # never a disabled one
    assert grant_shared(store, FLEET, ["b"], [private]) == [folder]
    assert decrypt((folder / "secret").read_bytes(), [key_b], "t") == store.secret(
        GeneratorId("token", None), "t", [private]
    )
    assert grant_shared(store, FLEET, ["a", "b", "c"], [private]) == []  # nothing lacks any more


def test_a_missing_dependency_is_made_without_counting_as_derived(repo) -> None:  # type: ignore[no-untyped-def]
    """A rotation also makes what its generators lack (select's missing dependencies): not derived
    from them, so no consent is asked for it."""
    root, _ = repo
    shutil.rmtree(root / "vars/shared/ca")
    plan = plan_rotation(VarsStore(root), FLEET, "a", ["cert"])
    assert plan.requested == (GeneratorId("cert", "a"),) and plan.dependents == ()
