"""Every sops error names the file it is about and says what is wrong with it (DESIGN §1: errors name
what they are about and what to do). Guards the mutants that drop `source` or change the diagnosis."""

from __future__ import annotations

import json

import pytest

from fleet_sdk import sops
from fleet_sdk.sops.document import data_key, encrypt_value

SOURCE = "vars/per-machine/m0/openssh/ssh.id_ed25519/secret"
PRIVATE, PUBLIC = sops.generate()


def _doc() -> dict:
    return json.loads(sops.encrypt(b"hunter2", [PUBLIC]))


def _refused(document: str | bytes | dict, error: type[sops.SopsError], *words: str) -> str:
    text = json.dumps(document) if isinstance(document, dict) else document
    with pytest.raises(error) as info:
        sops.decrypt(text, [PRIVATE], source=SOURCE)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: "), message
    assert info.value.source == SOURCE
    for word in words:
        assert word in message, (word, message)
    return message


def test_not_json_names_the_file() -> None:
    _refused(b"\xff not json", sops.NotSopsDocumentError, "not a sops document (not JSON)")


def test_no_metadata_names_the_file() -> None:
    _refused({"data": "x"}, sops.NotSopsDocumentError, "sops metadata not found")
    _refused({"data": "x", "sops": "3.7"}, sops.NotSopsDocumentError, "sops metadata not found")


def test_no_data_value_names_the_file() -> None:
    doc = _doc()
    doc["data"] = 1
    _refused(doc, sops.NotSopsDocumentError, "no 'data' value")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m: m.update(age="age1x"), ["sops.age is str, not a list of recipients"]),
        (lambda m: m.update(age=["age1x"]), ["sops.age[0] is str, not a {recipient, enc} entry"]),
        (lambda m: m["age"][0].pop("enc"), ["sops.age[0].enc is missing or not a string"]),
        (lambda m: m["age"][0].update(recipient=7), ["sops.age[0].recipient is missing or not a string"]),
        (lambda m: m.update(key_groups={}), ["sops.key_groups is dict, not a list of key groups"]),
        (lambda m: m.update(key_groups=[[]]), ["sops.key_groups[0] is list, not a key group"]),
        (lambda m: m.update(key_groups=[{"age": 1}]), ["sops.key_groups[0].age is int"]),
        (lambda m: m.update(lastmodified=1), ["sops.lastmodified is int, not str"]),
        (lambda m: m.update(mac=None), ["sops.mac is NoneType, not str"]),
        (lambda m: m.update(mac_only_encrypted="yes"), ["sops.mac_only_encrypted is str, not bool"]),
        (lambda m: m.pop("mac"), ["sops.mac is missing, so the content cannot be verified"]),
        (lambda m: m.pop("lastmodified"), ["sops.lastmodified is missing"]),
    ],
)
def test_damaged_metadata_is_named_with_the_fix(change, words: list[str]) -> None:
    doc = _doc()
    change(doc["sops"])
    _refused(doc, sops.NotSopsDocumentError, *words, "the file was damaged: restore it from git or regenerate it")


def test_a_value_that_is_not_enc_names_what_and_the_file() -> None:
    doc = _doc()
    doc["data"] = "plain text"
    _refused(doc, sops.NotSopsDocumentError, "the data value is not an ENC[AES256_GCM,…] value")


def test_a_value_of_another_type_names_the_type() -> None:
    doc = _doc()
    doc["data"] = doc["data"].replace("type:str]", "type:int]")
    _refused(doc, sops.NotSopsDocumentError, "the data value has type 'int'; the binary store holds str")


def test_bytes_values_are_read() -> None:
    doc = _doc()
    key = data_key(doc, [PRIVATE])
    doc["data"] = encrypt_value(key, b"hunter2", b"data:").replace("type:str]", "type:bytes]")
    assert sops.decrypt(json.dumps(doc), [PRIVATE]) == b"hunter2"


def test_a_tampered_mac_names_the_mac() -> None:
    doc = _doc()
    doc["sops"]["lastmodified"] = "2020-01-01T00:00:00Z"  # the MAC's AAD
    _refused(doc, sops.TamperedError, "the MAC fails authentication", "restore it from git")


def test_a_mac_of_other_content_names_the_file() -> None:
    doc = _doc()
    key = data_key(doc, [PRIVATE])
    doc["sops"]["mac"] = encrypt_value(key, b"0" * 128, doc["sops"]["lastmodified"].encode())
    _refused(doc, sops.MacMismatchError, "MAC mismatch", "restore the file from git or regenerate it")


def test_no_matching_key_lists_the_recipients_and_the_fix() -> None:
    other, _ = sops.generate()
    with pytest.raises(sops.NoMatchingKeyError) as info:
        sops.decrypt(json.dumps(_doc()), [other], source=SOURCE)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: no available age identity decrypts this file")
    assert f"its recipients: {PUBLIC[:24]}…)" in message
    assert "set SOPS_AGE_KEY or SOPS_AGE_KEY_FILE" in message


def test_no_identity_at_all_is_no_matching_key() -> None:
    with pytest.raises(sops.NoMatchingKeyError, match="its recipients: "):
        sops.decrypt(json.dumps(_doc()), [], source=SOURCE)


def test_rekey_to_nobody_names_the_file() -> None:
    with pytest.raises(sops.SopsError) as info:
        sops.rekey(json.dumps(_doc()), [PRIVATE], [], source=SOURCE)
    assert str(info.value) == f"{SOURCE}: a secret needs at least one recipient"


def test_rekey_of_a_damaged_file_names_it() -> None:
    doc = _doc()
    doc["data"] = doc["data"].replace("type:str]", "type:int]")
    with pytest.raises(sops.NotSopsDocumentError, match=f"^{SOURCE}: the data value has type 'int'"):
        sops.rekey(json.dumps(doc), [PRIVATE], [PUBLIC], source=SOURCE)


def test_encrypt_refusals_say_why() -> None:
    with pytest.raises(sops.EmptySecretError, match="refusing to encrypt an empty secret"):
        sops.encrypt(b"", [PUBLIC])
    with pytest.raises(sops.SopsError, match="at least one recipient"):
        sops.encrypt(b"x", [])


def test_recipients_are_deduplicated_in_order() -> None:
    _, other = sops.generate()
    text = sops.encrypt(b"x", [PUBLIC, other, f" {PUBLIC} "])
    assert sops.recipients(text) == [PUBLIC, other]


def test_rekey_of_a_file_that_is_no_sops_document_names_it() -> None:
    with pytest.raises(sops.NotSopsDocumentError, match=f"^{SOURCE}: not a sops document"):
        sops.rekey(b"not json", [PRIVATE], [PUBLIC], source=SOURCE)
    other, _ = sops.generate()
    with pytest.raises(sops.NoMatchingKeyError, match=f"^{SOURCE}: no available age identity"):
        sops.rekey(json.dumps(_doc()), [other], [PUBLIC], source=SOURCE)


def test_rekey_never_rewrites_a_document_whose_mac_does_not_match() -> None:
    doc = _doc()
    key = data_key(doc, [PRIVATE])
    doc["sops"]["mac"] = encrypt_value(key, b"0" * 128, doc["sops"]["lastmodified"].encode())
    with pytest.raises(sops.MacMismatchError, match=f"^{SOURCE}: MAC mismatch"):
        sops.rekey(json.dumps(doc), [PRIVATE], [PUBLIC], source=SOURCE)
