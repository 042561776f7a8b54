"""`fleet vars set` stores only what a generator could have: no empty value, nothing above 1 MiB, an
ssh public key that is one `ssh-ed25519` line matching its stored private half, an OpenSSH private
key that is one, a ZeroTier network id and address in their forms. Each refusal names machine and
generator/file, says what to give, and changes nothing. All through the real CLI and ssh-keygen."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fleet_sdk.vars.validate import MAX_VALUE_BYTES

from .tools import require
from .vars_project import fleet_cli, make_project, snapshot

pytestmark = pytest.mark.integration

STACK = """
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine, Role, ServiceInstance
from fleet_sdk.vars import stock as builtins
def _note(inputs, prompts, out):
    (out / "text").write_text("generated")
    (out / "blob").write_text("generated")


note = Generator(name="note", python=_note,
                 files=(GeneratorFile(name="text", secret=False), GeneratorFile(name="blob")))
zerotier = ServiceInstance(name="zt", module="zerotier", roles={"controller": Role(machines=("m0",))})


def build(settings):
    return Fleet(name="demo", instances=(zerotier,), machines=(
        Machine(name="m0", generators=(note, builtins.openssh(), builtins.openssh_ca(), builtins.deploy_key())),))
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root, env = make_project(tmp_path / "p", STACK)
    # all but ZeroTier's (its identity takes seconds to make, and its public values are set by hand here)
    out = fleet_cli(
        root, env, "vars", "generate", "-g", "note", "-g", "openssh", "-g", "openssh-ca", "-g", "deploy-key"
    )
    assert out.returncode == 0, out.stderr.decode()
    return root, env


def keypair(folder: Path, name: str) -> tuple[bytes, bytes]:
    """(OpenSSH private key, public line) made by ssh-keygen."""
    require(("ssh-keygen", "openssh-client"))
    folder.mkdir(exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(folder / name)], check=True)
    return (folder / name).read_bytes(), (folder / f"{name}.pub").read_bytes()


def public_half(folder: Path, private: bytes) -> bytes:
    """`ssh-keygen -y` of a private key."""
    require(("ssh-keygen", "openssh-client"))
    folder.mkdir(exist_ok=True)
    path = folder / "given"
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(private)
    return subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, check=True).stdout


def refused(project: tuple[Path, dict[str, str]], var: str, value: bytes, *words: str) -> str:
    root, env = project
    before = snapshot(root)
    out = fleet_cli(root, env, "vars", "set", "m0", var, stdin=value)
    err = out.stderr.decode()
    assert out.returncode == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: machine 'm0': {var}: ") and "nothing was stored" in err, err
    for w in words:
        assert w in err, (w, err)
    assert snapshot(root) == before
    return err


def stored(project: tuple[Path, dict[str, str]], var: str, value: bytes) -> str:
    root, env = project
    out = fleet_cli(root, env, "vars", "set", "m0", var, stdin=value)
    assert out.returncode == 0, out.stderr.decode()
    assert fleet_cli(root, env, "vars", "get", "m0", var).stdout == value
    return out.stderr.decode()


def test_empty_and_oversized_values_are_refused_and_the_limit_itself_is_stored(project) -> None:
    for var in ("note/text", "note/blob"):
        refused(project, var, b"", "the value is empty", "Give the value on standard input")
    refused(project, "note/blob", b"x" * (MAX_VALUE_BYTES + 1), f"more than the limit of {MAX_VALUE_BYTES}")
    stored(project, "note/text", b"y" * MAX_VALUE_BYTES)  # the control: the limit itself is accepted
    stored(project, "note/blob", b"a secret\n")


def test_ssh_public_keys_are_one_ed25519_line_matching_their_private_half(project, tmp_path: Path) -> None:
    root, env = project
    keys = tmp_path / "keys"
    private = fleet_cli(root, env, "vars", "get", "m0", "openssh/ssh.id_ed25519").stdout
    own = public_half(keys, private)
    _, other = keypair(keys, "other")
    rsa_line = b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 rsa\n"
    for gen, file in (
        ("openssh", "ssh.id_ed25519.pub"),
        ("openssh-ca", "id_ed25519.pub"),
        ("deploy-key", "id_ed25519.pub"),
    ):
        var = f"{gen}/{file}"
        refused(project, var, own + own, "not an ssh-ed25519 public key line (it is more than one line)")
        refused(project, var, rsa_line, "does not start with `ssh-ed25519 `", "ssh-keygen -y -f KEY")
        refused(project, var, b"ssh-ed25519 bm90IGEga2V5\n", "not an ssh-ed25519 public key line")
    # a well-formed key that is not the stored private key's public half
    refused(
        project,
        "openssh/ssh.id_ed25519.pub",
        other,
        "not the public half of the stored private key openssh/ssh.id_ed25519",
    )
    stored(project, "openssh/ssh.id_ed25519.pub", own)  # ssh-keygen's own line for the stored key
    stored(project, "openssh/ssh.id_ed25519.pub", own.rstrip(b"\n") + b" root@m0\n")  # a comment is fine


def test_a_new_private_key_is_checked_and_the_stale_public_half_is_pointed_out(project, tmp_path: Path) -> None:
    root, env = project
    new_private, new_public = keypair(tmp_path / "keys", "host")
    refused(project, "openssh/ssh.id_ed25519", b"not a key\n", "not an unencrypted OpenSSH ed25519 private key")
    protected = tmp_path / "keys" / "protected"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(protected)], check=True)
    refused(project, "openssh/ssh.id_ed25519", protected.read_bytes(), "protected by a passphrase")
    warning = stored(project, "openssh/ssh.id_ed25519", new_private)
    assert "warning: openssh/ssh.id_ed25519.pub of machine 'm0' is not the public half of the new key" in warning
    stored(project, "openssh/ssh.id_ed25519.pub", new_public)  # now it matches the new private half
    check = fleet_cli(root, env, "vars", "check", "m0")
    assert b"openssh" not in check.stdout, check.stdout.decode()


def test_zerotier_network_ids_and_addresses_keep_their_form(project) -> None:
    nwid = "db4344343b14b9ab"
    refused(
        project, "zerotier-network-zt/network-id", nwid.upper().encode(), "is not a ZeroTier network id", "printf %s"
    )
    refused(project, "zerotier-network-zt/network-id", f"{nwid}\n".encode(), "is not a ZeroTier network id")
    refused(project, "zerotier-network-zt/network-id", b"db4344343b14b9", "is not a ZeroTier network id")
    stored(project, "zerotier-network-zt/network-id", nwid.encode())
    refused(project, "zerotier-ip-m0-zt/ip", b"10.0.0.1", "is not an IPv6 address")
    refused(project, "zerotier-ip-m0-zt/ip", b"fddb:4344:343b:14b9:ab99:93a1:b2c3:d4e5\n", "is not an IPv6 address")
    stored(project, "zerotier-ip-m0-zt/ip", b"fddb:4344:343b:14b9:ab99:93a1:b2c3:d4e5")
