"""ZeroTier identity generation in this process (the search the worker processes run): every identity
it returns is one ZeroTier accepts (locallyValidate), its text forms parse back, and a search told to
stop stops. Identity.generate's worker processes run the same `_search`."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import queue
import re

import pytest

from fleet_sdk.zerotier import identity as zerotier
from fleet_sdk.zerotier.identity import Identity


@pytest.fixture(autouse=True)
def _python_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_ZEROTIER_PYTHON", "1")  # not zerotier-idtool, when installed


def _check(identity: Identity) -> None:
    assert identity.validate()
    assert re.fullmatch(r"[0-9a-f]{10}", identity.address)
    assert len(identity.public_key) == 64 and identity.private_key is not None and len(identity.private_key) == 64
    assert zerotier._public_of(identity.private_key) == identity.public_key
    digest = zerotier._memory_hard(identity.public_key)
    assert digest[0] < zerotier.FIRST_BYTE_LESS_THAN and digest[59:64].hex() == identity.address
    assert Identity.parse(identity.secret() + "\n") == identity
    assert Identity.parse(identity.public()) == Identity(identity.address, identity.public_key)


def test_generate_in_this_process_gives_valid_identities() -> None:
    first, second = Identity.generate(workers=1), Identity.generate(workers=1)
    _check(first)
    _check(second)
    assert first.address != second.address and first.private_key != second.private_key


def test_a_search_with_a_stop_that_is_not_set_finds_one() -> None:
    _check(zerotier._search(multiprocessing.get_context("fork").Event()))


def test_a_stopped_search_exits_quietly() -> None:
    stop = multiprocessing.get_context("fork").Event()
    stop.set()
    with pytest.raises(SystemExit) as info:
        zerotier._search(stop)
    assert info.value.code == 0
    found: queue.Queue[Identity] = queue.Queue()
    zerotier._search_into(found, stop)  # type: ignore[arg-type]
    assert found.empty()


def test_search_into_hands_over_what_it_found() -> None:
    found: queue.Queue[Identity] = queue.Queue()
    zerotier._search_into(found, multiprocessing.get_context("fork").Event())  # type: ignore[arg-type]
    _check(found.get_nowait())


def test_an_identity_without_private_key_has_no_secret() -> None:
    public = Identity.generate(workers=1)
    with pytest.raises(zerotier.ZeroTierError, match=f"identity {public.address} has no private key"):
        Identity(public.address, public.public_key).secret()


# Keys found by trying sha256(b"ecdh <i>") with this seed: with it, key 60's hash qualifies, key 127's
# hash starts with 17 (one more than ZeroTier accepts) and key 4848's hash qualifies but gives an
# address starting with ff (reserved).
SEED = hashlib.sha256(b"fleet-sdk zerotier test seed").digest()


def _key(i: int) -> bytes:
    return hashlib.sha256(b"ecdh %d" % i).digest()


def _draws(monkeypatch: pytest.MonkeyPatch, *values: bytes) -> list[bytes]:
    left = list(values)
    monkeypatch.setattr(zerotier.secrets, "token_bytes", lambda n: left.pop(0))
    return left


def test_a_hash_starting_with_17_is_not_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    left = _draws(monkeypatch, SEED, _key(127), _key(60))
    identity = zerotier._search(None)
    assert identity.private_key == _key(60) + SEED and not left
    _check(identity)


def test_a_reserved_address_starts_over_with_new_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    left = _draws(monkeypatch, SEED, _key(4848), SEED, _key(60))
    identity = zerotier._search(None)
    assert identity.private_key == _key(60) + SEED and not left
    assert not identity.address.startswith("ff")


def test_search_processes_that_all_die_are_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    def dies(stop: object) -> Identity:
        os._exit(3)

    monkeypatch.setattr(zerotier, "_search", dies)  # the forked search processes inherit it
    with pytest.raises(zerotier.ZeroTierError, match=r"ended without an identity \(exit codes 3, 3,"):
        Identity.generate(workers=2)


def test_the_parallel_search_returns_a_valid_identity() -> None:
    _check(Identity.generate(workers=2))
