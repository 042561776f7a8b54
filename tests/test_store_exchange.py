"""A generator's folder is replaced in one step (renameat2 RENAME_EXCHANGE); where the kernel cannot
exchange, the three-rename fallback never leaves the generator missing."""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
from pathlib import Path

import pytest

from fleet_sdk.vars import store


def folders(tmp_path: Path) -> tuple[Path, Path]:
    final, staging = tmp_path / "gen", tmp_path / ".staging-gen"
    for folder, text in ((final, "old"), (staging, "new")):
        folder.mkdir()
        (folder / "value").write_text(text)
    return staging, final


def test_the_swap_is_one_exchange_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    staging, final = folders(tmp_path)

    def no_rename(*args: object) -> None:
        raise AssertionError("a rename: the swap was not one exchange")

    monkeypatch.setattr(store.os, "rename", no_rename)
    assert store._swap_in(staging, final) is True
    assert (final / "value").read_text() == "new" and (staging / "value").read_text() == "old"


class NoExchange:
    """libc as on a kernel or filesystem without RENAME_EXCHANGE (or failing with `code`)."""

    def __init__(self, code: int) -> None:
        self.code = code

    def renameat2(self, *args: object) -> int:
        ctypes.set_errno(self.code)
        return -1


def test_without_exchange_the_fallback_swaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    staging, final = folders(tmp_path)
    monkeypatch.setattr(store, "_libc", NoExchange(errno.EINVAL))
    assert store._swap_in(staging, final) is True
    assert (final / "value").read_text() == "new" and (staging / "value").read_text() == "old"


def test_a_failing_rename_in_the_fallback_puts_the_old_generator_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging, final = folders(tmp_path)
    monkeypatch.setattr(store, "_libc", NoExchange(errno.EINVAL))
    real = os.rename

    def failing(src: object, dst: object) -> None:
        if Path(str(src)) == staging:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(store.os, "rename", failing)
    with pytest.raises(OSError, match="No space"):
        store._swap_in(staging, final)
    assert (final / "value").read_text() == "old"  # never missing: a reader would regenerate it
    assert (staging / "value").read_text() == "new"


def test_a_real_exchange_failure_is_raised_not_papered_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    staging, final = folders(tmp_path)
    monkeypatch.setattr(store, "_libc", NoExchange(errno.EACCES))
    with pytest.raises(PermissionError) as info:
        store._swap_in(staging, final)
    assert info.value.filename == str(final)  # the error names the generator's folder
    assert (final / "value").read_text() == "old" and (staging / "value").read_text() == "new"


def test_a_fallback_killed_between_its_renames_is_put_back_by_recovery(tmp_path: Path) -> None:
    from fleet_sdk.vars.recovery import recover

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    gen = tmp_path / "vars/shared/ca"
    gen.mkdir(parents=True)
    (gen / ".validation-hash").write_text("h")
    # the fallback's first rename done, the process killed before the second
    moved = gen.with_name(".ca.new-abcd1234.old")
    os.rename(gen, moved)
    removed, _ = recover(tmp_path)
    assert (gen / ".validation-hash").read_text() == "h" and not moved.exists()
    assert moved not in removed
