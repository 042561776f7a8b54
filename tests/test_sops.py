"""fleet_sdk.sops against real sops documents, tampered copies and random round trips."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet_sdk import sops
from fleet_sdk.sops.age import operator_identities

from .sops_fixtures import CHECKS_KEY, DOCUMENTS, TEST_KEY, document

IDENTITIES = [sops.generate() for _ in range(5)]  # (private, public)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_fixtures_decrypt_with_each_listed_key(name: str) -> None:
    plaintext, keys = DOCUMENTS[name]
    for key in keys:
        assert sops.decrypt(document(name), [key]) == plaintext


def test_fixture_recipients() -> None:
    assert sops.recipients(document("v3.10.2-binary-a-secret.json")) == [
        "age12w2ld4vxfyf3hdq2d8la4cu0tye4pq97egvv3me4wary7xkdnq2snh0zx2",
        "age1qm0p4vf9jvcnn43s6l4prk8zn6cx0ep9gzvevxecv729xz540v8qa742eg",
    ]


def test_wrong_key_is_refused_naming_the_file() -> None:
    with pytest.raises(sops.NoMatchingKeyError, match="secret.json: no available age identity"):
        sops.decrypt(document("v3.7.3-binary-foo.json"), [TEST_KEY], source="secret.json")
    with pytest.raises(sops.NoMatchingKeyError):
        sops.decrypt(document("v3.7.3-binary-foo.json"), [])


def _flip(b64: str, index: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


ENC = re.compile(r"ENC\[AES256_GCM,data:([^,]*),iv:([^,]*),tag:([^,]*),type:(\w+)\]")


def _tampered(doc: dict, key: str, part: str) -> dict:
    """A copy with one byte of `part` (data, iv or tag) changed in the value at `key` (data or mac)."""
    holder = doc if key == "data" else doc["sops"]
    m = ENC.fullmatch(holder[key])
    assert m
    fields = dict(zip(("data", "iv", "tag", "type"), m.groups(), strict=True))
    fields[part] = _flip(fields[part], 3)
    holder[key] = f"ENC[AES256_GCM,data:{fields['data']},iv:{fields['iv']},tag:{fields['tag']},type:{fields['type']}]"
    return doc


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
@pytest.mark.parametrize(("key", "part"), [(k, p) for k in ("data", "mac") for p in ("data", "iv", "tag")])
def test_one_changed_byte_is_refused(name: str, key: str, part: str) -> None:
    _, keys = DOCUMENTS[name]
    doc = _tampered(json.loads(document(name)), key, part)
    with pytest.raises((sops.TamperedError, sops.MacMismatchError)) as info:
        sops.decrypt(json.dumps(doc), keys, source="vars/x/secret")
    assert "vars/x/secret" in str(info.value) and "regenerate" in str(info.value)


def test_mac_of_other_content_is_a_mismatch() -> None:
    a = json.loads(sops.encrypt(b"one", [IDENTITIES[0][1]]))
    b = json.loads(sops.encrypt(b"two", [IDENTITIES[0][1]]))
    # same key needed for a mismatch rather than a GCM failure: rekey b's data under a's key is not
    # possible, so swap a's MAC for a MAC of different content made under a's own data key
    from fleet_sdk.sops.document import data_key, encrypt_value

    key = data_key(a, [IDENTITIES[0][0]])
    a["sops"]["mac"] = encrypt_value(key, b"0" * 128, a["sops"]["lastmodified"].encode())
    with pytest.raises(sops.MacMismatchError, match="MAC mismatch"):
        sops.decrypt(json.dumps(a), [IDENTITIES[0][0]])
    assert sops.decrypt(json.dumps(b), [IDENTITIES[0][0]]) == b"two"


def test_written_layout_follows_sops_3_13() -> None:
    text = sops.encrypt(b"x", [IDENTITIES[0][1], IDENTITIES[1][1]])
    assert text.endswith("}\n") and '\n\t"data": "ENC[AES256_GCM,data:' in text
    doc = json.loads(text)
    assert list(doc) == ["data", "sops"]
    assert list(doc["sops"]) == ["age", "lastmodified", "mac", "version"]
    assert [list(e) for e in doc["sops"]["age"]] == [["enc", "recipient"], ["enc", "recipient"]]
    assert doc["sops"]["version"].startswith("3.13.")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["sops"]["lastmodified"])
    assert all(e["enc"].startswith("-----BEGIN AGE ENCRYPTED FILE-----\n") for e in doc["sops"]["age"])
    iv = ENC.fullmatch(doc["data"]).group(2)  # type: ignore[union-attr]
    assert len(base64.b64decode(iv)) == 32
    assert text == json.dumps(doc, indent="\t", ensure_ascii=False) + "\n"


def test_empty_plaintext_and_unknown_recipients_are_refused() -> None:
    with pytest.raises(sops.EmptySecretError):
        sops.encrypt(b"", [IDENTITIES[0][1]])
    with pytest.raises(sops.UnknownRecipientError, match="not supported"):
        sops.encrypt(b"x", ["pgp:0xDEADBEEF"])
    with pytest.raises(sops.UnknownRecipientError, match="malformed"):
        sops.encrypt(b"x", ["age1notakey"])
    with pytest.raises(sops.SopsError):
        sops.encrypt(b"x", [])


def test_not_a_sops_document() -> None:
    for bad in (b"not json", b"[]", b'{"data": "x"}', b'{"sops": {}}'):
        with pytest.raises(sops.NotSopsDocumentError):
            sops.decrypt(bad, [TEST_KEY], source="f")


def test_unknown_metadata_keys_and_key_groups_are_read() -> None:
    doc = json.loads(document("v3.10.2-binary-peer1-age-key.json"))
    doc["sops"]["future_key"] = {"x": 1}
    doc["sops"]["key_groups"] = [{"age": doc["sops"].pop("age")}]
    assert sops.decrypt(json.dumps(doc), [TEST_KEY]).startswith(b"AGE-SECRET-KEY-1")


def test_ssh_ed25519_recipients(tmp_path) -> None:
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(tmp_path / "k")], check=True)
    public = (tmp_path / "k.pub").read_text().strip()
    text = sops.encrypt(b"over ssh", [public])
    assert sops.recipients(text) == [public]
    assert sops.decrypt(text, [(tmp_path / "k").read_text()]) == b"over ssh"


def test_operator_identities_as_clan_reads_them(tmp_path) -> None:
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"# comment\n{IDENTITIES[1][0]}\n")
    assert operator_identities({"SOPS_AGE_KEY": f"{IDENTITIES[0][0]} {IDENTITIES[2][0]}"}) == [
        IDENTITIES[0][0],
        IDENTITIES[2][0],
    ]
    assert operator_identities({"SOPS_AGE_KEY_FILE": str(key_file)}) == [IDENTITIES[1][0]]
    default = tmp_path / "cfg" / "sops" / "age" / "keys.txt"
    default.parent.mkdir(parents=True)
    default.write_text(IDENTITIES[3][0])
    assert operator_identities({"XDG_CONFIG_HOME": str(tmp_path / "cfg")}) == [IDENTITIES[3][0]]
    assert operator_identities({"HOME": str(tmp_path / "nohome")}) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plaintext=st.binary(min_size=1, max_size=2048),
    chosen=st.lists(st.integers(0, 4), min_size=1, max_size=5, unique=True),
)
def test_round_trip_each_recipient_decrypts(plaintext: bytes, chosen: list[int]) -> None:
    text = sops.encrypt(plaintext, [IDENTITIES[i][1] for i in chosen])
    assert sops.recipients(text) == [IDENTITIES[i][1] for i in chosen]
    for i in chosen:
        assert sops.decrypt(text, [IDENTITIES[i][0]]) == plaintext
    for i in set(range(5)) - set(chosen):
        with pytest.raises(sops.NoMatchingKeyError):
            sops.decrypt(text, [IDENTITIES[i][0]])


@settings(max_examples=30, deadline=None)
@given(
    plaintext=st.binary(min_size=1, max_size=256),
    before=st.lists(st.integers(0, 4), min_size=1, max_size=5, unique=True),
    after=st.lists(st.integers(0, 4), min_size=1, max_size=5, unique=True),
)
def test_rekey_keeps_plaintext_and_changes_exactly_the_recipients(
    plaintext: bytes, before: list[int], after: list[int]
) -> None:
    text = sops.encrypt(plaintext, [IDENTITIES[i][1] for i in before])
    new = sops.rekey(text, [IDENTITIES[before[0]][0]], [IDENTITIES[i][1] for i in after])
    assert sorted(sops.recipients(new)) == sorted(IDENTITIES[i][1] for i in after)
    for i in after:
        assert sops.decrypt(new, [IDENTITIES[i][0]]) == plaintext
    old_doc, new_doc = json.loads(text), json.loads(new)
    assert new_doc["data"] == old_doc["data"]  # same data key and value: only the key wrapping changed
    assert {k: v for k, v in new_doc["sops"].items() if k != "age"} == {
        k: v for k, v in old_doc["sops"].items() if k != "age"
    }


def test_rekey_of_a_fixture_keeps_version_and_mac() -> None:
    old = json.loads(document("v3.7.3-binary-foo.json"))
    new = json.loads(sops.rekey(document("v3.7.3-binary-foo.json"), [CHECKS_KEY], [IDENTITIES[0][1]]))
    assert new["sops"]["mac"] == old["sops"]["mac"] and new["sops"]["version"] == "3.7.3"
    assert sops.decrypt(json.dumps(new), [IDENTITIES[0][0]]) == b"foo"
