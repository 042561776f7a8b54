"""The sops/ tree: key.json bytes and member links as clan makes them, machine keys, re-keying."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.cli import main
from fleet_sdk.sops.keygen import keygen
from fleet_sdk.sops.tree import KeyEntry, SopsTree, key_json_bytes, read_key_json, secret_dirs

ADMIN = sops.generate()
OTHER = sops.generate()


@pytest.fixture
def tree(tmp_path: Path) -> SopsTree:
    t = SopsTree(tmp_path / "repo")
    t.write_keys("users", "cameron", [KeyEntry(ADMIN[1])])
    return t


def test_key_json_bytes_equal_clans() -> None:
    key = "age1vn8fpkmkzkjttcuc3prq3jrp7t5fsrdqey74ydu5p88nvvtmv8qq7qmv8z"  # any age1 string
    expected = '[\n  {\n    "publickey": "' + key + '",\n    "type": "age"\n  }\n]'
    assert key_json_bytes([KeyEntry(key)]) == expected.encode()
    two = json.loads(key_json_bytes([KeyEntry("age1zz"), KeyEntry("age1aa"), KeyEntry("age1zz")]))
    assert [e["publickey"] for e in two] == ["age1aa", "age1zz"]  # sorted, unique


def test_key_json_old_single_object_form_is_read(tmp_path: Path) -> None:
    (tmp_path / "key.json").write_text('{"publickey": "age1abc", "type": "age"}')
    assert read_key_json(tmp_path / "key.json") == [KeyEntry("age1abc")]
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(sops.SopsError, match="bad.json"):
        read_key_json(tmp_path / "bad.json")


def test_member_links_are_relative_and_equal_clans(tree: SopsTree) -> None:
    tree.write_keys("machines", "magnetite", [KeyEntry(OTHER[1])])
    tree.write_keys("machines", "cinnabar", [KeyEntry(OTHER[1])])
    repo = tree.repo
    per_machine = repo / "vars/per-machine/magnetite/openssh/ssh.id_ed25519"
    tree.write_secret(per_machine, b"k", {"machines": ["magnetite"], "users": ["cameron"]})
    shared = repo / "vars/shared/user-password-cameron/user-password-hash"
    tree.write_secret(shared, b"h", {"machines": ["cinnabar"]})
    age_key = tree.secret_dir("pyrite-age.key")
    tree.write_secret(age_key, b"AGE-SECRET-KEY-1X", {"users": ["cameron"]})
    assert os.readlink(per_machine / "machines/magnetite") == "../../../../../../sops/machines/magnetite"
    assert os.readlink(per_machine / "users/cameron") == "../../../../../../sops/users/cameron"
    assert os.readlink(shared / "machines/cinnabar") == "../../../../../sops/machines/cinnabar"
    assert os.readlink(age_key / "users/cameron") == "../../../users/cameron"
    assert sorted(secret_dirs(repo)) == sorted([per_machine, shared, age_key])


def test_recipients_follow_the_links_including_groups(tree: SopsTree) -> None:
    m1, m2 = sops.generate(), sops.generate()
    tree.write_keys("machines", "a", [KeyEntry(m1[1])])
    tree.write_keys("machines", "b", [KeyEntry(m2[1])])
    group = tree.root / "groups/ops/machines"
    group.mkdir(parents=True)
    os.symlink("../../../machines/b", group / "b")
    secret = tree.repo / "vars/per-machine/a/gen/file"
    tree.write_secret(secret, b"payload", {"machines": ["a"], "users": ["cameron"], "groups": ["ops"]})
    assert tree.recipients_of(secret) == {m1[1], m2[1], ADMIN[1]}
    assert set(sops.recipients((secret / "secret").read_text())) == {m1[1], m2[1], ADMIN[1]}
    for key in (m1[0], m2[0], ADMIN[0]):
        assert sops.decrypt((secret / "secret").read_bytes(), [key]) == b"payload"
    assert tree.links_machine(secret, "b") and not tree.links_machine(secret, "c")


def test_secret_files_are_private_and_atomic(tree: SopsTree) -> None:
    secret = tree.repo / "vars/per-machine/a/gen/file"
    tree.write_secret(secret, b"x", {"users": ["cameron"]})
    assert stat.S_IMODE((secret / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.stat().st_mode) == 0o700
    assert [p.name for p in secret.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(sops.EmptySecretError):
        tree.write_secret(secret, b"", {"users": ["cameron"]})
    assert sops.decrypt((secret / "secret").read_bytes(), [ADMIN[0]]) == b"x"  # untouched


def test_broken_member_link_names_the_link(tree: SopsTree) -> None:
    secret = tree.repo / "vars/per-machine/a/gen/file"
    tree.write_secret(secret, b"x", {"users": ["cameron"]})
    (secret / "machines").mkdir()
    os.symlink("../../../../../../sops/machines/ghost", secret / "machines/ghost")
    with pytest.raises(sops.BrokenMemberError) as info:
        tree.recipients_of(secret)
    assert "vars/per-machine/a/gen/file/machines/ghost" in str(info.value) and "fleet vars fix" in str(info.value)


def test_machine_key_creation_rekeys_linked_secrets(tree: SopsTree) -> None:
    # a secret that already links machine m (e.g. written by clan before m had a key in this repo)
    secret = tree.repo / "vars/per-machine/m/gen/file"
    tree.write_secret(secret, b"for m", {"users": ["cameron"]})
    unrelated = tree.repo / "vars/per-machine/n/gen/file"
    tree.write_secret(unrelated, b"not m", {"users": ["cameron"]})
    before_unrelated = (unrelated / "secret").read_bytes()
    tree.member_dir("machines", "m").mkdir(parents=True)
    (secret / "machines").mkdir()
    os.symlink("../../../../../../sops/machines/m", secret / "machines/m")

    public, created = tree.ensure_machine_key("m", [ADMIN[0]])
    assert created and public.startswith("age1")
    assert tree.keys_of("machines", "m") == [public]
    private = tree.machine_private_key("m", [ADMIN[0]])
    assert sops.public_key(private) == public
    age_secret = tree.secret_dir("m-age.key") / "secret"
    assert set(sops.recipients(age_secret.read_text())) == {ADMIN[1]}  # not the machine itself
    assert sops.decrypt((secret / "secret").read_bytes(), [private]) == b"for m"
    assert (unrelated / "secret").read_bytes() == before_unrelated
    assert tree.ensure_machine_key("m", [ADMIN[0]]) == (public, False)


def test_no_admin_key(tree: SopsTree) -> None:
    with pytest.raises(sops.NoAdminKeyError, match="fleet vars keygen"):
        tree.ensure_machine_key("m", [])
    with pytest.raises(sops.NoAdminKeyError, match="not the key of any user"):
        tree.ensure_machine_key("m", [OTHER[0]])


def test_keygen_creates_the_key_once_and_registers_the_user(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "USER": "alice"}
    repo = tmp_path / "repo"
    first = keygen(repo, env=env)
    key_file = tmp_path / "home/.config/sops/age/keys.txt"
    assert first.created_key and first.key_file == key_file and first.wrote_user
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert SopsTree(repo).keys_of("users", "alice") == [first.public_key]
    again = keygen(repo, env=env)
    assert not again.created_key and not again.wrote_user and again.public_key == first.public_key
    with pytest.raises(sops.SopsError, match="user name"):
        keygen(repo, "Bad Name", env=env)


def test_keygen_adds_a_new_admin_and_rekeys_what_links_them(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    tree = SopsTree(repo)
    tree.write_keys("users", "bob", [KeyEntry(OTHER[1])])
    secret = repo / "sops/secrets/db-password"
    tree.write_secret(secret, b"pw", {"users": ["bob"]})
    # bob registers a second key of his, from a machine where he holds the first one
    result = keygen(repo, "bob", env={"SOPS_AGE_KEY": OTHER[0]})
    assert not result.wrote_user  # same key: nothing to do
    both = {"SOPS_AGE_KEY": f"{OTHER[0]}\n{ADMIN[0]}"}
    result = keygen(repo, "bob", env={"SOPS_AGE_KEY": ADMIN[0]})
    assert result.wrote_user and result.stuck == [secret]  # the new key alone cannot open it
    assert operator_identities_opened(secret, both)


def operator_identities_opened(secret: Path, env: dict[str, str]) -> bool:
    tree = SopsTree(secret.parents[2])
    assert tree.rekey(secret, sops.operator_identities(env))
    return sops.decrypt((secret / "secret").read_bytes(), [ADMIN[0]]) == b"pw"


def test_vars_keygen_cli(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert main(["vars", "keygen", "--repo", str(tmp_path / "repo"), "--name", "ops"]) == 0
    out = capsys.readouterr().out
    assert "created age key age1" in out and "sops/users/ops/key.json" in out
    monkeypatch.setenv("SOPS_AGE_KEY", "garbage")
    assert main(["vars", "keygen", "--repo", str(tmp_path / "repo")]) == 1
    assert "error: SOPS_AGE_KEY holds no" in capsys.readouterr().err


def test_vars_fix_cli_rekeys_to_the_links(tree: SopsTree, monkeypatch, capsys) -> None:
    secret = tree.repo / "sops/secrets/api-token"
    tree.write_secret(secret, b"t", {"users": ["cameron"]})
    tree.write_keys("machines", "web", [KeyEntry(OTHER[1])])
    (secret / "machines").mkdir()
    os.symlink("../../../machines/web", secret / "machines/web")  # added by hand, as with clan
    monkeypatch.setenv("SOPS_AGE_KEY", ADMIN[0])
    assert main(["vars", "fix", "--repo", str(tree.repo)]) == 0
    assert "re-keyed" in capsys.readouterr().out
    assert sops.decrypt((secret / "secret").read_bytes(), [OTHER[0]]) == b"t"
    assert main(["vars", "fix", "--repo", str(tree.repo)]) == 0
    assert "exactly its members" in capsys.readouterr().out
    monkeypatch.setenv("SOPS_AGE_KEY", sops.generate()[0])
    tree.write_keys("users", "cameron", [KeyEntry(ADMIN[1]), KeyEntry(sops.generate()[1])])
    assert main(["vars", "fix", "--repo", str(tree.repo)]) == 1
    assert "cannot open" in capsys.readouterr().out


def test_keygen_writes_to_the_stacks_fleet_repository(tmp_path: Path) -> None:
    import subprocess
    import sys

    project = tmp_path / "project"
    (project / "fleet-repo").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (project / "Pulumi.dev.yaml").write_text("config:\n  fleet:repo: fleet-repo\n")
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    env.pop("SOPS_AGE_KEY", None)
    env.pop("SOPS_AGE_KEY_FILE", None)
    out = subprocess.run(
        [sys.executable, "-m", "fleet_sdk", "vars", "keygen", "--name", "bob"],
        cwd=project, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (project / "fleet-repo/sops/users/bob/key.json").is_file()
    assert not (project / "sops").exists()
