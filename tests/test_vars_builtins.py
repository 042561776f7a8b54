"""The built-in generators (fleet_sdk.vars.stock) run with the real ssh-keygen and openssl, and
their files checked byte for byte against what clan's services produce (reference/clan.md §8).

With CI=true a missing ssh-keygen/openssl fails these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from fleet_sdk.errors import GeneratorError, SpecError
from fleet_sdk.spec.generators import Generator
from fleet_sdk.testing import RecordingRunner
from fleet_sdk.tools.runner import LOCAL
from fleet_sdk.vars import stock as builtins
from fleet_sdk.vars.execute import run_generator
from fleet_sdk.vars.store import GeneratorId
from tests.tools import require

pytestmark = pytest.mark.integration

PUB = re.compile(rb"^ssh-ed25519 [A-Za-z0-9+/]+=* \n$")  # `-C ""`: an empty comment after the space
HASH = re.compile(r"^\$6\$([./0-9A-Za-z]{1,16})\$[./0-9A-Za-z]{86}$")
WORD = re.compile(r"^[a-z]{5,9}$")


@pytest.fixture(autouse=True)
def _tools() -> None:
    require(("ssh-keygen", "openssh-client"), ("openssl", "openssl"))


def gen(g: Generator, machine: str | None = "m1", inputs: dict[str, dict[str, bytes]] | None = None, **prompts: str):
    return run_generator(GeneratorId(g.name, None if g.share else machine), g, inputs or {}, prompts, sandbox=False)


def tool(*argv: str | Path, stdin: bytes | None = None) -> str:
    return subprocess.run([str(a) for a in argv], input=stdin, capture_output=True, check=True).stdout.decode()


def save(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def assert_key_pair(tmp_path: Path, private: bytes, public: bytes) -> None:
    assert private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert private.endswith(b"-----END OPENSSH PRIVATE KEY-----\n")
    assert PUB.fullmatch(public), public
    derived = tool("ssh-keygen", "-y", "-f", save(tmp_path / "key", private))
    # -y prints the comment-less public key; the stored one is the same key plus " " (empty comment)
    assert derived.encode() == public[:-2] + b"\n"


def fingerprint(path: Path) -> str:
    return tool("ssh-keygen", "-lf", path).split()[1]


def assert_hash(password: bytes, hashed: bytes) -> None:
    text = hashed.decode()
    m = HASH.fullmatch(text)
    assert m, text  # one line, no trailing newline, default rounds (no rounds=)
    again = tool("openssl", "passwd", "-6", "-salt", m.group(1), "-stdin", stdin=password)
    assert again == text + "\n"


def assert_passphrase(password: bytes) -> None:
    words = password.decode().split("-")
    assert len(words) == 6 and all(WORD.fullmatch(w) for w in words), password


def test_openssh(tmp_path: Path) -> None:
    g = builtins.openssh()
    assert (g.name, g.share, g.dependencies, g.validation_hash) == ("openssh", False, (), None)
    assert [(f.name, f.secret, f.deploy) for f in g.files] == [
        ("ssh.id_ed25519", True, True),
        ("ssh.id_ed25519.pub", False, True),
    ]
    files = gen(g)
    assert_key_pair(tmp_path, files["ssh.id_ed25519"], files["ssh.id_ed25519.pub"])
    assert len(files["ssh.id_ed25519.pub"]) == 82  # as vanixiets' openssh/ssh.id_ed25519.pub/value


def test_openssh_ca_and_deploy_key(tmp_path: Path) -> None:
    ca, dk = builtins.openssh_ca(), builtins.deploy_key()
    assert (ca.name, ca.share, dk.name, dk.share) == ("openssh-ca", True, "deploy-key", True)
    assert [(f.name, f.secret, f.deploy) for f in ca.files] == [
        ("id_ed25519", True, False),
        ("id_ed25519.pub", False, False),
    ]
    assert [(f.name, f.secret, f.deploy) for f in dk.files] == [
        ("id_ed25519", True, False),
        ("id_ed25519.pub", False, True),
    ]
    for g in (ca, dk):
        files = gen(g, machine=None)
        assert_key_pair(tmp_path, files["id_ed25519"], files["id_ed25519.pub"])


def test_openssh_cert_is_a_host_certificate_signed_by_the_ca(tmp_path: Path) -> None:
    ca = gen(builtins.openssh_ca(), machine=None)
    host = gen(builtins.openssh())
    g = builtins.openssh_cert("magnetite", ["zt", "lan", "zt"])
    assert (g.name, g.share, g.dependencies) == ("openssh-cert", False, ("openssh", "openssh-ca"))
    assert [(f.name, f.secret) for f in g.files] == [("ssh.id_ed25519-cert.pub", False)]
    cert = gen(g, "magnetite", {"openssh-ca": ca, "openssh": host})["ssh.id_ed25519-cert.pub"]

    # one line: type, blob, and the key's file name as comment (ssh-keygen's default when it has none)
    assert re.fullmatch(rb"ssh-ed25519-cert-v01@openssh\.com [A-Za-z0-9+/]+=* ssh\.id_ed25519\.pub\n", cert), cert
    # -L parses the certificate, which checks its signature against the CA key it embeds
    listing = tool("ssh-keygen", "-L", "-f", save(tmp_path / "cert.pub", cert))
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in listing.splitlines()[1:])}
    assert fields["Type"] == "ssh-ed25519-cert-v01@openssh.com host certificate"
    assert fields["Key ID"] == '"magnetite"'
    assert fields["Serial"] == "0"
    assert fields["Valid"] == "forever"
    principals = listing.split("Principals:")[1].split("Critical Options:")[0].split()
    assert principals == ["magnetite.lan", "magnetite.zt"]  # deduplicated and sorted, as clan does
    ca_fp = fingerprint(save(tmp_path / "ca.pub", ca["id_ed25519.pub"]))
    assert fields["Signing CA"].split()[1] == ca_fp
    assert fields["Public key"].split()[1] == fingerprint(save(tmp_path / "host.pub", host["ssh.id_ed25519.pub"]))

    # a certificate whose signature was tampered with does not parse
    blob = bytearray(cert.split()[1])
    blob[-10] = ord("A") if blob[-10] != ord("A") else ord("B")
    bad = save(tmp_path / "bad-cert.pub", b"ssh-ed25519-cert-v01@openssh.com " + bytes(blob) + b"\n")
    assert subprocess.run(["ssh-keygen", "-L", "-f", str(bad)], check=False, capture_output=True).returncode != 0


def test_openssh_cert_validation_hash_matches_clan() -> None:
    g = builtins.openssh_cert("magnetite", ["zt"])
    assert g.validation == {"domains": {"zt": "zt"}, "name": "magnetite"}
    assert g.validation_hash == "19d13108d73f2af8ae65e44cec69f6aed71b7a212052c01140ac6a56990d42d3"


@pytest.mark.parametrize(
    ("machine", "domains"),
    [("magnetite", []), ("magnetite", ["a,b"]), ("-x", ["zt"]), ("m", ["has space"]), ("m", ["zt\n"])],
)
def test_openssh_cert_refuses_bad_principals(machine: str, domains: list[str]) -> None:
    with pytest.raises(SpecError):
        builtins.openssh_cert(machine, domains)


def test_openssh_cert_needs_its_inputs() -> None:
    with pytest.raises(GeneratorError, match="input openssh-ca/id_ed25519 is missing"):
        gen(builtins.openssh_cert("m1", ["zt"]), inputs={"openssh": {"ssh.id_ed25519.pub": b"x"}})


def test_user_password_uses_the_prompt() -> None:
    g = builtins.user_password("alice")
    assert (g.name, g.share) == ("user-password-alice", False)
    assert [(f.name, f.secret, f.deploy, f.needed_for) for f in g.files] == [
        ("user-password", True, False, "services"),
        ("user-password-hash", True, True, "users"),
    ]
    assert [(p.name, p.type, p.persist) for p in g.prompts] == [("user-password", "hidden", True)]
    files = gen(g, **{"user-password": "correct hörse\n"})
    assert files["user-password"] == "correct hörse".encode()  # newlines dropped, as clan's `tr -d "\n"`
    assert_hash(files["user-password"], files["user-password-hash"])


@pytest.mark.parametrize("given", ["", "\n"])
def test_user_password_generates_when_the_prompt_is_empty(given: str) -> None:
    files = gen(builtins.user_password("root"), **{"user-password": given})
    assert_passphrase(files["user-password"])
    assert_hash(files["user-password"], files["user-password-hash"])


def test_user_password_without_prompt_shared() -> None:
    g = builtins.user_password("bob", prompt=False, share=True)
    assert (g.share, g.prompts) == (True, ())
    files = gen(g, machine=None)
    assert_passphrase(files["user-password"])
    assert_hash(files["user-password"], files["user-password-hash"])
    assert files != gen(g, machine=None)  # fresh randomness every time


def test_user_password_refuses_what_openssl_would_truncate() -> None:
    with pytest.raises(GeneratorError, match="1 to 256 bytes"):
        gen(builtins.user_password("alice"), **{"user-password": "x" * 257})


def test_emergency_access() -> None:
    g = builtins.emergency_access()
    assert [(f.name, f.secret, f.deploy) for f in g.files] == [
        ("password", True, False),
        ("password-hash", False, True),
    ]
    files = gen(g)
    assert_passphrase(files["password"])
    assert_hash(files["password"], files["password-hash"])


def test_state_version() -> None:
    g = builtins.state_version()
    assert [(f.name, f.secret) for f in g.files] == [("version", False)] and g.validation is None
    assert gen(g) == {"version": b"25.05"}
    assert gen(builtins.state_version("24.11")) == {"version": b"24.11"}
    with pytest.raises(SpecError):
        builtins.state_version("25.05\n")


def test_passphrase_entropy() -> None:
    words = builtins._wordlist()
    assert len(words) > 7000 and all(WORD.fullmatch(w) for w in words)


def test_only_declared_files_are_left_and_no_secret_is_an_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RecordingRunner(delegate=LOCAL)  # records, then runs for real
    monkeypatch.setattr(builtins, "LOCAL", recorder)

    def call(g: Generator, inputs: dict[str, dict[str, bytes]], **prompts: str) -> dict[str, bytes]:
        out = tmp_path / g.name
        out.mkdir(mode=0o700)
        assert g.python is not None
        g.python(inputs, prompts, out)
        assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in g.files)  # no temp files
        return {p.name: p.read_bytes() for p in out.iterdir()}

    ca = call(builtins.openssh_ca(), {})
    host = call(builtins.openssh(), {})
    call(builtins.openssh_cert("m1", ["zt"]), {"openssh-ca": ca, "openssh": host})
    user = call(builtins.user_password("alice"), {}, **{"user-password": "hunter2-secret"})
    emergency = call(builtins.emergency_access(), {})
    # without libcrypt the hashes come from openssl, with the password on stdin only
    from fleet_sdk.vars import libcrypt

    monkeypatch.setattr(libcrypt, "_lib", None)
    user = call(builtins.user_password("bob"), {}, **{"user-password": "hunter3-secret"})
    args = "\n".join(" ".join(c) for c in recorder.argvs)
    assert "openssl passwd -6 -stdin" in args
    assert [c.input for c in recorder.calls if c.argv[0] == "openssl"] == [b"hunter3-secret"]  # on stdin
    for secret in (ca["id_ed25519"], host["ssh.id_ed25519"], user["user-password"], emergency["password"]):
        assert secret.decode() not in args
