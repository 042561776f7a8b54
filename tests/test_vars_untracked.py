"""Vars and keys that exist but git does not track (a killed generate adds what it wrote only at its
end; a flake sees tracked files only) are reported by `fleet vars check` by folder, and added by
`fleet vars fix` and by the next generate. What an interrupted write leaves (staging folders, a
secret not yet linked, git's index.lock) is reported and repaired the same way. Every writer adds
what it wrote: keygen its key.json, set the machine keys it creates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.sops.tree import SopsTree, rekey_all
from fleet_sdk.vars.recovery import unit

from .fault_tools import cheap_project, kill_group, spawn, untracked_files, wait_for
from .vars_project import fleet_cli

pytestmark = pytest.mark.integration


def killed_run(project: Path, env: dict[str, str]) -> set[str]:
    """A generate killed while m0's `slow` runs, once every other generator is in place; the
    folders (as check names them) it left untracked."""
    gen = spawn(project, {**env, "FLEET_TEST_SLOW": "60"}, "vars", "generate")
    done = [project / "vars/shared/ca"] + [project / f"vars/per-machine/m{i}/{g}" for i in (0, 1) for g in "abc"]
    done += [project / f"vars/per-machine/m{i}/cert" for i in (0, 1)]
    try:
        wait_for(lambda: all(p.is_dir() for p in done) or gen.poll() is not None, what="the fast generators")
        assert gen.poll() is None, gen.communicate()
    finally:
        kill_group(gen)
    assert not (project / "vars/per-machine/m0/slow").exists()
    left = untracked_files(project)
    assert any(p.startswith("vars/per-machine/m1/a/") for p in left)  # the fault bites: stored, not tracked
    return {str(unit(project, project / p)) for p in left}


def check_lines(project: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    out = fleet_cli(project, env, "vars", "check")
    assert b"Traceback" not in out.stderr
    return out.returncode, out.stdout.decode().splitlines()


def test_check_names_what_a_killed_generate_left_untracked_and_fix_adds_it(tmp_path: Path) -> None:
    project, env = cheap_project(tmp_path / "p", machines=2)
    folders = killed_run(project, env)
    assert {"vars/shared/ca", "vars/per-machine/m1/cert", "sops/machines/m0", "sops/secrets/m1-age.key"} <= folders
    code, lines = check_lines(project, env)
    reported = {line.split(": ", 1)[0] for line in lines if "not tracked by git" in line}
    assert code == 1 and reported == folders, lines
    assert "m0: slow/v: public value missing: run `fleet vars generate`" in lines
    assert all("run `fleet vars fix`" in line for line in lines if "not tracked" in line)

    fixed = fleet_cli(project, env, "vars", "fix")
    assert fixed.returncode == 0, fixed.stderr.decode()
    assert {
        line.removeprefix("git add: ") for line in fixed.stdout.decode().splitlines() if "git add" in line
    } == folders
    assert not untracked_files(project)
    code, lines = check_lines(project, env)
    assert code == 1 and lines == ["m0: slow/v: public value missing: run `fleet vars generate`"]
    assert fleet_cli(project, env, "vars", "generate").returncode == 0
    assert check_lines(project, env) == (0, ["all vars are present, current and encrypted to their members"])


def test_the_next_generate_adds_what_a_killed_one_left(tmp_path: Path) -> None:
    project, env = cheap_project(tmp_path / "p", machines=2)
    killed_run(project, env)
    out = fleet_cli(project, env, "vars", "generate")
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().splitlines() == ["generated slow (machine m0)"]  # the rest was kept
    assert not untracked_files(project)
    assert check_lines(project, env)[0] == 0


def test_keygen_and_set_add_the_keys_they_write(tmp_path: Path) -> None:
    project, env = cheap_project(tmp_path / "p", machines=2)
    assert "sops/users/admin/key.json" in untracked_files(project)  # written without git, as by hand
    out = fleet_cli(project, env, "vars", "keygen")  # the admin's key again: nothing to write
    assert out.returncode == 0 and b"unchanged" in out.stdout, out.stderr.decode()
    assert "sops/users/admin/key.json" not in untracked_files(project)
    out = fleet_cli(project, env, "vars", "keygen", "--name", "bob")
    assert out.returncode == 0 and b"wrote" in out.stdout
    assert not untracked_files(project)
    # m1 has no machine key: setting its deploy secret creates one, and adds it with the var
    out = fleet_cli(project, env, "vars", "set", "m1", "a/s", stdin=b"by hand")
    assert out.returncode == 0, out.stderr.decode()
    assert (project / "sops/machines/m1/key.json").is_file() and not untracked_files(project)
    tracked = subprocess.run(["git", "-C", str(project), "ls-files"], capture_output=True, text=True, check=True).stdout
    assert "sops/secrets/m1-age.key/secret" in tracked and "vars/per-machine/m1/a/s/secret" in tracked


def test_leftovers_of_interrupted_writes_are_reported_and_repaired(tmp_path: Path) -> None:
    project, env = cheap_project(tmp_path / "p", machines=1)
    assert fleet_cli(project, env, "vars", "generate").returncode == 0
    identity = env["SOPS_AGE_KEY"]
    # what a kill leaves: a staging folder beside its generator, a temp file of an atomic write, a
    # machine key written but not yet linked to its admin, and the index.lock of a killed `git add`
    staging = project / "vars/per-machine/m0/.a.new-abcd1234"
    shutil.copytree(project / "vars/per-machine/m0/a", staging, symlinks=True)
    temp = project / "sops/machines/m0/.key.json.k2j4h5g6.tmp"
    temp.write_text("half")
    key = project / "sops/secrets/m0-age.key"
    shutil.rmtree(key / "users")
    index_lock = project / ".git/index.lock"
    index_lock.write_text("")
    # the faults bite: git cannot add, and a re-key by links would leave the key readable by nobody
    add = subprocess.run(["git", "-C", str(project), "add", "vars"], capture_output=True, text=True, check=False)
    assert add.returncode != 0 and "index.lock" in add.stderr
    with pytest.raises(sops.SopsError, match="at least one recipient"):
        rekey_all(SopsTree(project), [identity])

    code, lines = check_lines(project, env)
    assert code == 1
    for path in (staging, temp):
        assert f"{path.relative_to(project)}: left by an interrupted write, never used: run `fleet vars fix`" in lines
    assert f"{index_lock}: left by a killed git command (none has it open): run `fleet vars fix`" in lines
    assert any(line.startswith("sops/secrets/m0-age.key: no member links") for line in lines), lines

    # a lock that a running git holds is not stale
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import time; f = open({str(index_lock)!r}, 'a'); print(flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"\n"
        assert not any("index.lock" in line for line in check_lines(project, env)[1])
    finally:
        holder.kill()
        holder.wait()

    fixed = fleet_cli(project, env, "vars", "fix")
    assert fixed.returncode == 0, fixed.stderr.decode()
    assert not staging.exists() and not temp.exists() and not index_lock.exists()
    assert sorted(p.name for p in (key / "users").iterdir()) == ["admin"]
    assert SopsTree(project).machine_private_key("m0", [identity]).startswith("AGE-SECRET-KEY-1")
    assert check_lines(project, env)[0] == 0
