"""Every writer of the vars store takes the repository lock: `vars set` during a generate waits for it
(its value is never overwritten by the generate), or gives up after FLEET_VARS_LOCK_TIMEOUT naming
the holder; generate, set, fix and keygen all wait; readers do not."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fleet_sdk.spec import GeneratorFile
from fleet_sdk.vars.lock import repository_lock
from fleet_sdk.vars.store import GeneratorId, VarsStore

from .fault_tools import cheap_project, lock_holder, spawn, wait_for
from .vars_project import fleet_cli, snapshot

SLOW_V = GeneratorFile(name="v", secret=False)


def _generate_holding_the_lock(project: Path, env: dict[str, str], seconds: float):
    """`fleet vars generate -g slow` (m0's `slow` takes `seconds`), once it holds the lock."""
    gen = spawn(project, {**env, "FLEET_TEST_SLOW": str(seconds)}, "vars", "generate", "-g", "slow")
    wait_for(lambda: lock_holder(project) == gen.pid or gen.poll() is not None, what="the generate to take the lock")
    assert gen.poll() is None, gen.communicate()
    return gen


def test_a_set_during_a_generate_waits_for_it_and_its_value_stays(tmp_path: Path) -> None:
    project, env = cheap_project(tmp_path / "p", machines=1)
    assert fleet_cli(project, env, "vars", "generate").returncode == 0

    # negative control: a write that takes no lock (what `vars set` did) is lost to the running generate
    gen = _generate_holding_the_lock(project, env, 1.5)
    VarsStore(project).set_file(GeneratorId("slow", "m0"), SLOW_V, b"unlocked-write", ["m0"], "")
    code = gen.wait(timeout=30)
    lost = fleet_cli(project, env, "vars", "get", "m0", "slow/v").stdout
    # the fault bites: the generate's swap replaced the write, or (when the write landed in the middle
    # of the generate's own exchange, as it can on a loaded machine) the generate failed on it
    assert code != 0 or lost.startswith(b"generated-"), (code, lost)

    gen = _generate_holding_the_lock(project, env, 1.5)
    setter = spawn(project, env, "vars", "set", "m0", "slow/v", stdin=b"set-by-hand")
    time.sleep(0.6)
    assert setter.poll() is None and gen.poll() is None  # the set waits while the generate runs
    gen_out, gen_err = gen.communicate(timeout=30)
    _, set_err = setter.communicate(timeout=30)
    assert gen.returncode == 0, gen_err.decode()
    assert setter.returncode == 0, set_err.decode()
    assert f"waiting for process {gen.pid} (`fleet vars generate`)".encode() in set_err
    assert b"generated slow (machine m0)" in gen_out
    assert fleet_cli(project, env, "vars", "get", "m0", "slow/v").stdout == b"set-by-hand"
    check = fleet_cli(project, env, "vars", "check")
    assert check.returncode == 0, check.stdout.decode()


def test_a_set_gives_up_after_the_deadline_naming_the_holder_and_changes_nothing(tmp_path: Path) -> None:
    project, env = cheap_project(tmp_path / "p", machines=1)
    assert fleet_cli(project, env, "vars", "generate").returncode == 0
    gen = _generate_holding_the_lock(project, env, 2)
    before = snapshot(project)
    started = time.monotonic()
    out = fleet_cli(project, {**env, "FLEET_VARS_LOCK_TIMEOUT": "0.3"}, "vars", "set", "m0", "slow/v", stdin=b"x")
    waited = time.monotonic() - started
    assert gen.poll() is None  # the generate still holds the lock: the set really met it
    assert out.returncode == 1 and b"Traceback" not in out.stderr
    waiting, err = out.stderr.decode().split("\n", 1)
    assert waiting.startswith(f"waiting for process {gen.pid} (`fleet vars generate`)")
    assert err.startswith("error: ") and f"process {gen.pid} (`fleet vars generate`)" in err, err
    assert "run `fleet vars set` again" in err and "FLEET_VARS_LOCK_TIMEOUT" in err
    assert waited < 1.8  # it gave up at its deadline, not when the generate ended
    assert snapshot(project) == before
    assert gen.wait(timeout=30) == 0


def test_every_writer_waits_for_the_lock_and_readers_do_not(tmp_path: Path) -> None:
    project, env = cheap_project(tmp_path / "p", machines=2)
    assert fleet_cli(project, env, "vars", "generate", "m0").returncode == 0  # m1 has no machine key yet
    impatient = {**env, "FLEET_VARS_LOCK_TIMEOUT": "0.2"}
    writers = [
        ("vars", "generate"),
        ("vars", "set", "m1", "a/s"),  # a deploy secret of m1: would create m1's machine key
        ("vars", "set", "m0", "slow/v"),
        ("vars", "fix"),
        ("vars", "keygen", "--name", "bob"),
    ]
    before = snapshot(project)
    with repository_lock(project, "test holder"):
        for args in writers:
            out = fleet_cli(project, impatient, *args, stdin=b"value")
            err = out.stderr.decode()
            assert out.returncode == 1 and "\nerror: " in err and "Traceback" not in err, (args, err)
            assert f"process {os.getpid()} (`test holder`)" in err, (args, err)
        for args in [("vars", "check", "m0"), ("vars", "list", "m0"), ("vars", "get", "m0", "a/p")]:
            assert fleet_cli(project, impatient, *args).returncode == 0, args
    assert snapshot(project) == before
    # without the holder, the same commands go through
    for args in writers:
        out = fleet_cli(project, impatient, *args, stdin=b"value")
        assert out.returncode == 0, (args, out.stderr.decode())
