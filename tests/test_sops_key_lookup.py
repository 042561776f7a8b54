"""Where the operator's age key is looked up (as sops and clan look): XDG_CONFIG_HOME, HOME/.config,
macOS's Application Support, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY; and the messages for keys that do not
parse, which name what was wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.sops import age


def test_default_key_file_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(age.sys, "platform", "linux")
    assert age.default_key_file({"XDG_CONFIG_HOME": "/x/cfg", "HOME": "/h"}) == Path("/x/cfg/sops/age/keys.txt")
    assert age.default_key_file({"XDG_CONFIG_HOME": "", "HOME": "/h"}) == Path("/h/.config/sops/age/keys.txt")
    assert age.default_key_file({"HOME": "/h"}) == Path("/h/.config/sops/age/keys.txt")


def test_default_key_file_on_macos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(age.sys, "platform", "darwin")
    wanted = Path("/Users/a/Library/Application Support/sops/age/keys.txt")
    assert age.default_key_file({"HOME": "/Users/a", "XDG_CONFIG_HOME": "/x"}) == wanted


def test_default_key_file_without_home_expands_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(age.sys, "platform", "linux")
    monkeypatch.setenv("HOME", "/home/op")
    assert age.default_key_file({}) == Path("/home/op/.config/sops/age/keys.txt")
    monkeypatch.setattr(age.sys, "platform", "darwin")
    assert age.default_key_file({}) == Path("/home/op/Library/Application Support/sops/age/keys.txt")


def test_default_key_file_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(age.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/from/env")
    assert age.default_key_file() == Path("/from/env/sops/age/keys.txt")


def test_key_file_choice() -> None:
    assert age.key_file({"SOPS_AGE_KEY": "AGE-SECRET-KEY-1X", "SOPS_AGE_KEY_FILE": "/k"}) is None
    assert age.key_file({"SOPS_AGE_KEY": "", "SOPS_AGE_KEY_FILE": "/k"}) == Path("/k")
    assert age.key_file({"SOPS_AGE_KEY_FILE": "", "XDG_CONFIG_HOME": "/c"}) == Path("/c/sops/age/keys.txt")


def test_operator_identities_read_the_process_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    private, _ = sops.generate()
    monkeypatch.setenv("SOPS_AGE_KEY", f"  {private}\n# not a key\n")
    assert sops.operator_identities() == [private]
    monkeypatch.delenv("SOPS_AGE_KEY")
    (tmp_path / "keys.txt").write_text(f"# created: today\n{private}\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "keys.txt"))
    assert sops.operator_identities() == [private]


def test_public_key_of_an_identity() -> None:
    private, public = sops.generate()
    assert private.startswith("AGE-SECRET-KEY-1") and public.startswith("age1")
    assert sops.public_key(f"  {private}\n") == public


def test_a_malformed_identity_says_where_it_came_from() -> None:
    with pytest.raises(sops.NoAdminKeyError) as info:
        sops.public_key("AGE-SECRET-KEY-1NOPE")
    assert "from SOPS_AGE_KEY or your key file" in str(info.value)
    assert "AGE-SECRET-KEY-1… as `age-keygen` writes them" in str(info.value)


def test_a_malformed_identity_line_is_refused() -> None:
    with pytest.raises(sops.NoAdminKeyError, match="expected lines of the form AGE-SECRET-KEY-1…"):
        age.parse_identities(["# comment\n\nAGE-SECRET-KEY-1NOPE\n"])
    private, _ = sops.generate()
    assert len(age.parse_identities([f"# comment\n\n  {private}  \n"])) == 1


def test_recipient_errors_quote_the_recipient() -> None:
    with pytest.raises(sops.UnknownRecipientError) as info:
        age.parse_recipient("  pgp:0xDEADBEEF  ")
    assert str(info.value).startswith("recipient 'pgp:0xDEADBEEF' is not supported: use an age X25519 key")
    with pytest.raises(sops.UnknownRecipientError, match="^recipient 'age1notakey' is malformed: "):
        age.parse_recipient("age1notakey")
    long = "ssh-ed25519 " + "A" * 80
    with pytest.raises(sops.UnknownRecipientError) as info:
        age.parse_recipient(long)
    assert f"recipient {long[:40]!r} is malformed" in str(info.value)


def test_post_quantum_age_recipients_are_not_supported() -> None:
    with pytest.raises(sops.UnknownRecipientError, match="is not supported"):
        age.parse_recipient("age1pq1" + "q" * 60)
