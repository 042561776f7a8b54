"""sops documents written by fleet_sdk decrypt with implementations that share no code with ours.

Independent readers used here:

* **sops-age 4.0.2** (npm, JavaScript; github.com/humphd/sops-age): a sops decryptor for json/yaml/dotenv
  documents built on `age-encryption` (typage, the TypeScript age by age's author) and `@noble/ciphers`
  (pure-JS AES-GCM). fleet_sdk is Python on pyrage (rust-age) and pyca/cryptography (OpenSSL): different
  language, different age and AES-GCM implementations, no shared code. sops-age has no binary store, so it
  reads our binary-store document as a JSON store and returns `{"data": "<plaintext>"}`; per spec §1.8 the
  ENC value, its AAD (`data:`) and the MAC are the same for both stores, so this is the same check.
* Two gaps of sops-age 4.0.2 are closed by `scripts/independent-sops/decrypt.mjs`, a small JavaScript
  decoder written from the spec (reference/sops-zerotier.md §1.3-1.5) on the same JS libraries: sops-age
  **never verifies the MAC** (its check is an empty statement), and it decodes every value as UTF-8 (so a
  non-UTF-8 plaintext comes back with U+FFFD). The helper returns the raw bytes and checks the MAC.
* **age** (Debian's `age` CLI, 1.1.1 on bookworm: the Go reference implementation filippo.io/age, as
  linked into sops and sops-nix) unwraps every `enc` data key, proving Go age accepts what pyrage writes
  (including the grease stanza rust-age adds, spec §1.3).

The npm packages are installed with `npm ci` from `scripts/independent-sops/package-lock.json` (exact
versions and integrity hashes) into the git-ignored `.cache/independent-sops/`. With CI=true a missing
node/npm/age, or a failed install, fails the tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # only to forge a bad MAC

# Only writing (encrypt/rekey) and key generation come from our code; nothing here decrypts with it.
from fleet_sdk.sops import encrypt, generate, rekey

from .sops_fixtures import FIXTURES

REPO = Path(__file__).resolve().parents[1]
HELPER = REPO / "scripts" / "independent-sops"
CACHE = REPO / ".cache" / "independent-sops"
IN_CI = os.environ.get("CI") == "true"

Runner = Callable[[list[tuple[str, str]]], list[dict]]


def _unavailable(reason: str) -> None:
    """In CI a missing independent tool is a failure; on a developer machine, a skip."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the independent check must run; see scripts/system-deps)")
    pytest.skip(reason)


def _install_sops_age() -> Path:
    for tool, package in (("node", "nodejs"), ("npm", "npm")):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} not found (Debian package {package}); needed for the sops-age check")
    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = b"".join((HELPER / name).read_bytes() for name in ("package.json", "package-lock.json"))
    stamp = CACHE / ".installed"
    if not (stamp.exists() and stamp.read_text() == hashlib.sha256(wanted).hexdigest()):
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(HELPER / name, CACHE / name)
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(CACHE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            _unavailable(f"npm ci of sops-age failed (offline?):\n{done.stderr[-2000:]}")
        stamp.write_text(hashlib.sha256(wanted).hexdigest())
    # ESM resolves packages next to the script, so the helper runs from the install folder.
    shutil.copyfile(HELPER / "decrypt.mjs", CACHE / "decrypt.mjs")
    return CACHE / "decrypt.mjs"


@pytest.fixture(scope="session")
def independent() -> Runner:
    """Decrypt (document, identity) pairs with sops-age and the JS spec decoder, in one node process."""
    script = _install_sops_age()

    def run(cases: list[tuple[str, str]]) -> list[dict]:
        payload = {"cases": [{"document": d, "identity": i} for d, i in cases]}
        done = subprocess.run(
            ["node", str(script)], input=json.dumps(payload), capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"node helper failed:\n{done.stderr}"
        results = json.loads(done.stdout)["results"]
        assert len(results) == len(cases)
        return results

    return run


@pytest.fixture(scope="session")
def go_age() -> str:
    path = shutil.which("age")
    if path is None:
        _unavailable("age not found (Debian package age); needed for the Go age check")
    assert path is not None
    return path


def _check(result: dict, plaintext: bytes) -> None:
    """Both independent readers return `plaintext`, and its MAC verifies."""
    assert "sops_age_error" not in result, result["sops_age_error"]
    assert "error" not in result, result["error"]
    # sops-age returns the JSON-store view; it decodes the value as UTF-8 (lossy for other bytes)
    assert result["sops_age"] == {"data": plaintext.decode("utf-8", errors="replace")}
    assert base64.b64decode(result["data_b64"]) == plaintext
    assert result["mac_computed"] == hashlib.sha512(plaintext).hexdigest().upper()
    assert result["mac_stored"] == result["mac_computed"], "MAC mismatch"


def _identity(key: str) -> str:
    """`key` itself if it is an identity, else the identity in that file of fixtures/sops/keys/."""
    if key.startswith("AGE-SECRET-KEY-1"):
        return key
    lines = (FIXTURES / "keys" / key).read_text().splitlines()
    return next(line.strip() for line in lines if line.strip().startswith("AGE-SECRET-KEY-1"))


# --- the tools themselves read real sops output (sanity check of the independent readers) ---------------

PEER1_IDENTITY = "AGE-SECRET-KEY-1V4VCVCJEJU0MHFNCAFKS6F89DNS0H6875DD2LDKV56VW95HLUJYQLU3KMN"
# (fixture, identity or its key file, plaintext, data key, MAC), from fixtures/sops/README.md
FIXTURE_CASES = [
    (
        "v3.7.3-binary-foo.json",
        "clan-core-checks-secrets-key.txt",
        b"foo",
        "15d2b8f34a653293b34317cc2adb32d9fdff47a166b2bfcfc02d4e4f75b16658",
        "F7FBBA6E0636F890E56FBBF3283E524C6FA3204AE298382D624741D0DC6638326E282C41BE5E4254D8820772C5518A2C5A8C0C7F7EDA19594A7EB539453E1ED7",
    ),
    (
        "v3.10.2-binary-a-secret.json",
        "clan-core-test-age-key.txt",
        b"a-secret",
        "336e846e4b39971ebc0aeeccf9dee6bdad7385d0d81c1e280bbdf7c01b114fb1",
        "54503185E1942A3970FA39CFE26BDF557491C0944FD0916BFAC12F2B4F6DDB8C55063237EA3DF5D9A158F12687152357FEE6704DDA038D5CD75332A2E9683562",
    ),
    (
        "v3.10.2-binary-a-secret.json",
        PEER1_IDENTITY,  # the first recipient of the same file
        b"a-secret",
        "336e846e4b39971ebc0aeeccf9dee6bdad7385d0d81c1e280bbdf7c01b114fb1",
        "54503185E1942A3970FA39CFE26BDF557491C0944FD0916BFAC12F2B4F6DDB8C55063237EA3DF5D9A158F12687152357FEE6704DDA038D5CD75332A2E9683562",
    ),
    (
        "v3.10.2-binary-generated-password.json",
        "clan-core-test-age-key.txt",
        b"2550\n",
        "46b449b4d868dab981e032bee7cec0904cb3ce9d281bb63370db5558d6fda6e5",
        "B68DC16F4CD1EF222E79E7C293FA41A3757F982211DAA995D15A4C3B35E2999716F03E5DA1D699259B729A83D5C7C58253A84F94FD11E8EEC7B7021DC97B9DAB",
    ),
    (
        "v3.10.2-binary-peer1-age-key.json",
        "clan-core-test-age-key.txt",
        PEER1_IDENTITY.encode(),
        "e0be76bcde27f481e74d1179fe68b8b94450cf8f4bd8e88cb2936a5a3c38faf6",
        "85E9D4C04CE8441662F1E03ACABC9246C3235AA4AD7F1364ABFB01F43EC2505EBF0F1B433F96F7C20B2ED90EAE01315D9E9EF2CE1733141936CAD32E4BA69378",
    ),
]


def test_independent_tools_read_the_real_sops_fixtures(independent: Runner, go_age: str, tmp_path: Path):
    cases = [((FIXTURES / "clan-core" / name).read_text(), _identity(key)) for name, key, *_ in FIXTURE_CASES]
    for (document, identity), result, (name, _, plaintext, key_hex, mac) in zip(
        cases, independent(cases), FIXTURE_CASES, strict=True
    ):
        _check(result, plaintext)
        assert result["data_key_hex"] == key_hex, name
        assert result["mac_stored"] == mac, name
        assert _go_age_unwrap(go_age, tmp_path, result["recipient"], document, identity) == bytes.fromhex(key_hex), name


# --- documents written by fleet_sdk ----------------------------------------------------------------------

PLAINTEXTS = {
    "ascii": b"hunter2",
    "trailing-newline": b"2550\n",
    "multiline-json-specials": b'line one\n"quoted" \\ <tag> & \t tab\r\nlast',
    "utf8": "pässwörd ✓ 🔑\n".encode(),
    "long": b"0123456789abcdef" * 512,  # 8 KiB
    # not UTF-8: sops-age returns U+FFFD for the invalid bytes; the exact bytes come from decrypt.mjs
    "binary": bytes(range(256)) + b"\x00\xff\xfe",
}


@pytest.mark.parametrize("count", [1, 3], ids=["1-recipient", "3-recipients"])
@pytest.mark.parametrize("name", list(PLAINTEXTS))
def test_fleet_sdk_document_decrypts_independently(independent: Runner, name: str, count: int):
    plaintext = PLAINTEXTS[name]
    keys = [generate() for _ in range(count)]
    document = encrypt(plaintext, [public for _, public in keys])
    results = independent([(document, identity) for identity, _ in keys])
    for (_, public), result in zip(keys, results, strict=True):
        _check(result, plaintext)
        assert result["recipient"] == public  # each identity opened its own entry
    # one data key, wrapped once per recipient
    assert len({r["data_key_hex"] for r in results}) == 1


def test_go_age_unwraps_each_recipient_entry(independent: Runner, go_age: str, tmp_path: Path):
    keys = [generate() for _ in range(3)]
    document = encrypt(b"hunter2\n", [public for _, public in keys])
    [expected] = {r["data_key_hex"] for r in independent([(document, i) for i, _ in keys])}
    for identity, public in keys:
        assert _go_age_unwrap(go_age, tmp_path, public, document, identity).hex() == expected
    # each entry is for its recipient only: another recipient's identity does not open it
    entries = json.loads(document)["sops"]["age"]
    other = tmp_path / "other.key"
    other.write_text(keys[1][0] + "\n")
    done = subprocess.run(
        [go_age, "--decrypt", "-i", str(other)],
        input=entries[0]["enc"].encode(),
        capture_output=True,
        check=False,
    )
    assert done.returncode != 0 and b"no identity matched" in done.stderr


def test_rekeyed_document_decrypts_independently(independent: Runner):
    (old_identity, old_public), *new = [generate() for _ in range(3)]
    original = encrypt(b"rotate me\n", [old_public])
    document = rekey(original, [old_identity], [public for _, public in new])
    results = independent([(document, identity) for identity, _ in [*new, (old_identity, old_public)]])
    for result in results[:2]:
        _check(result, b"rotate me\n")
    # the old recipient was dropped: neither reader opens the document with its identity
    assert "No matching recipient" in results[2]["sops_age_error"]
    assert "no identity matched" in results[2]["error"]


def test_independent_tools_reject_a_tampered_value(independent: Runner):
    identity, public = generate()
    doc = json.loads(encrypt(b"hunter2", [public]))
    data, rest = doc["data"].removeprefix("ENC[AES256_GCM,data:").split(",", 1)
    sealed = bytearray(base64.b64decode(data))
    sealed[0] ^= 1
    doc["data"] = f"ENC[AES256_GCM,data:{base64.b64encode(sealed).decode()},{rest}"
    [result] = independent([(json.dumps(doc), identity)])
    assert "invalid ghash tag" in result["sops_age_error"]
    assert "invalid ghash tag" in result["error"]


def test_the_mac_check_is_live(independent: Runner):
    """sops-age ignores the MAC, so the helper's own MAC check must be shown to catch a bad one."""
    identity, public = generate()
    document = encrypt(b"hunter2", [public])
    [good] = independent([(document, identity)])
    doc = json.loads(document)
    # a well-formed MAC of other content, sealed with the right data key and AAD
    iv = os.urandom(32)
    sealed = AESGCM(bytes.fromhex(good["data_key_hex"])).encrypt(
        iv, hashlib.sha512(b"other").hexdigest().upper().encode(), doc["sops"]["lastmodified"].encode()
    )
    wrong_mac = json.loads(document)
    wrong_mac["sops"]["mac"] = "ENC[AES256_GCM,data:{},iv:{},tag:{},type:str]".format(
        *(base64.b64encode(b).decode() for b in (sealed[:-16], iv, sealed[-16:]))
    )
    # lastmodified is the MAC's AAD
    moved = json.loads(document)
    moved["sops"]["lastmodified"] = "2000-01-01T00:00:00Z"
    bad_mac, bad_aad = independent([(json.dumps(wrong_mac), identity), (json.dumps(moved), identity)])
    assert bad_mac["sops_age"] == bad_aad["sops_age"] == {"data": "hunter2"}  # sops-age does not notice
    assert bad_mac["mac_stored"] != bad_mac["mac_computed"]
    with pytest.raises(AssertionError, match="MAC mismatch"):
        _check(bad_mac, b"hunter2")
    assert "invalid ghash tag" in bad_aad["error"]


def _go_age_unwrap(age: str, tmp_path: Path, recipient: str, document: str, identity: str) -> bytes:
    """The data key of `recipient`'s entry, decrypted by the Go age CLI from a real file."""
    [entry] = [e for e in json.loads(document)["sops"]["age"] if e["recipient"] == recipient]
    key_file = tmp_path / "identity.key"
    key_file.write_text(identity + "\n")
    armored = tmp_path / "enc.age"
    armored.write_text(entry["enc"])
    done = subprocess.run([age, "--decrypt", "-i", str(key_file), str(armored)], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert len(done.stdout) == 32
    return done.stdout
