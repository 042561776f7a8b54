"""ZeroTier math against ../shared/fixtures/zerotier.json (identities, addresses, primitives)."""

from __future__ import annotations

import json

import pytest

from fleet_sdk.errors import ZeroTierError
from fleet_sdk.zerotier.identity import Identity, _memory_hard, member_id, network_id, rfc4193, sixplane

from .sops_fixtures import SHARED

FIXTURE = json.loads((SHARED / "fixtures" / "zerotier.json").read_text())


@pytest.mark.parametrize("entry", FIXTURE["identities"], ids=lambda e: e["name"][:30])
def test_identities_reproduce(entry: dict) -> None:
    identity = Identity.parse(entry["identity"])
    assert identity.public() == entry["identity_public"]
    assert _memory_hard(identity.public_key).hex() == entry["memory_hard_digest"]
    # the plain Python loop (used without numba) gives the same digest
    assert _memory_hard(identity.public_key, compiled=False).hex() == entry["memory_hard_digest"]
    assert identity.validate() is entry["locally_valid"]
    if entry["has_private"]:
        assert identity.secret() == entry["identity"]


@pytest.mark.parametrize("entry", FIXTURE["addresses"], ids=lambda e: e["network_id"])
def test_addresses_reproduce(entry: dict) -> None:
    assert rfc4193(entry["network_id"], entry["node_id"]) == entry["rfc4193"]
    assert sixplane(entry["network_id"], entry["node_id"]) == entry["sixplane"]
    assert member_id(entry["rfc4193"]) == entry["node_id"]


def test_network_id_rule() -> None:
    rule = FIXTURE["network_id_rule"]
    assert network_id(rule["controller"], int(rule["network_number"], 16)) == rule["network_id"]
    random_ids = {network_id("db4344343b") for _ in range(50)}
    assert all(n.startswith("db4344343b") and len(n) == 16 and not n.endswith("000000") for n in random_ids)
    assert len(random_ids) > 45
    with pytest.raises(ZeroTierError):
        network_id("db4344343b", 0)


@pytest.mark.parametrize(
    "bad",
    [
        "8e4df28b72:1:" + "00" * 64,  # identity type
        "8e4df28b72:0:" + "00" * 63,  # short key
        "0000000000:0:" + "00" * 64,  # reserved
        "ff4df28b72:0:" + "00" * 64,  # reserved prefix
        "8e4df28b72:0",  # too few fields
        "xx4df28b72:0:" + "00" * 64,  # not hex
    ],
)
def test_malformed_identities_are_refused(bad: str) -> None:
    with pytest.raises(ZeroTierError):
        Identity.parse(bad)


def test_bad_node_and_network_ids() -> None:
    for node in ("123", "ffffffffff", "0000000000", "zzzzzzzzzz"):
        with pytest.raises(ZeroTierError):
            rfc4193("db4344343b14b903", node)
    with pytest.raises(ZeroTierError, match="16 hex digits"):
        rfc4193("db4344343b14b9", "db4344343b")


def test_generated_identities_validate() -> None:
    identity = Identity.generate()
    assert identity.validate()
    again = Identity.parse(identity.secret())
    assert again == identity and again.private_key is not None
    assert Identity.parse(identity.public()).private_key is None
