"""The repository lock excludes a second writer, decided by events, never by timing: the first
writer holds the lock until the second has tried and been refused (or, with a wait, until it is
seen waiting), so a lock taken shared instead of exclusive fails this every time."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from fleet_sdk.errors import LockError
from fleet_sdk.vars.lock import TIMEOUT_ENV, repository_lock


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(repo: Path, monkeypatch) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "0")  # do not wait: refuse at once
    held, tried = threading.Event(), threading.Event()
    outcome: list[str] = []

    def first() -> None:
        with repository_lock(repo, "first"):
            held.set()
            assert tried.wait(30)  # hold it until the second writer has tried

    def second() -> None:
        assert held.wait(30)
        try:
            with repository_lock(repo, "second"):
                outcome.append("entered")
        except LockError as e:
            outcome.append(str(e))
        finally:
            tried.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcome) == 1 and outcome[0] != "entered"
    assert "has been writing its vars" in outcome[0] and "(`first`)" in outcome[0]
    with repository_lock(repo, "third"):  # free again once the first is done
        pass


def test_a_waiting_writer_enters_only_after_the_first_leaves(repo: Path, monkeypatch, capfd) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "60")
    held, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with repository_lock(repo, "first"):
            held.set()
            assert release.wait(30)
            order.append("first leaves")

    def second() -> None:
        assert held.wait(30)
        with repository_lock(repo, "second"):
            order.append("second enters")

    a, b = threading.Thread(target=first), threading.Thread(target=second)
    a.start()
    b.start()
    # release the first only once the second says it is waiting for it
    for _ in range(600):
        if "waiting for" in capfd.readouterr().err:
            break
        b.join(0.05)
    else:
        pytest.fail("the second writer never said it was waiting")
    release.set()
    a.join(60)
    b.join(60)
    assert order == ["first leaves", "second enters"]
