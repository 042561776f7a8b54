"""Faults, for real, against the real CLI: SIGKILL at random points of a generate, two writers at once,
a full disk, a read-only repository. After each, `fleet vars check` tells the truth about the store
(judged from the files themselves, secrets decrypted with the admin key) and a new run recovers.
Each test has a negative control showing that the fault bit."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleet_sdk.spec import Fleet
from fleet_sdk.vars.selection import fleet_graph
from fleet_sdk.vars.store import generator_id

from .fault_tools import (
    cheap_project,
    cli_argv,
    generator_states,
    kill_group,
    load_fleet,
    lock_holder,
    spawn,
    untracked_files,
    wait_for,
)
from .tools import require
from .vars_project import fleet_cli, snapshot

pytestmark = pytest.mark.integration

SEEDS = range(14)
MACHINES = 6  # 26 generators
DELAY = "0.02"  # seconds per generator, so that a run spends a while writing
OK = "all vars are present, current and encrypted to their members"
_MISSING = re.compile(r"^(m\d+): ([^/]+)/([^:]+): (secret|public value) missing: run `fleet vars generate`$")
_UNTRACKED = re.compile(r"^((?:vars|sops)/\S+): \d+ files? not tracked by git, so the flake cannot see")
_LEFTOVER = re.compile(r"^(\S+): left by an interrupted write, never used: run `fleet vars fix`$")
_INDEX_LOCK = re.compile(r"^(\S+/index\.lock): left by a killed git command")
_UNLINKED = re.compile(r"^(sops/secrets/\S+|vars/\S+): no member links")


def unit_of(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[: 4 if parts[1] == "per-machine" else 3])


def disk_truth(repo: Path, fleet: Fleet, identity: str) -> dict[str, set]:
    """What check must report, from the files: generators missing files, folders with untracked
    files, dot-files of interrupted writes, a left index.lock, secrets without member links."""
    states = generator_states(repo, fleet, identity)
    for gid, state in states.items():  # a fresh generation: certificates are signed by the CA there is
        if gid.name == "cert" and state != "missing":
            cert = (repo / "vars" / gid.rel_dir / "c/value").read_text()
            a = (repo / "vars/per-machine" / str(gid.machine) / "a/p/value").read_text()
            assert cert == (repo / "vars/shared/ca/ca.pub/value").read_text() + "/" + a
    dots = {
        str(p.relative_to(repo))
        for top in ("vars", "sops")
        for p in (repo / top).rglob(".*")
        if p.name != ".validation-hash" and not any(q.startswith(".") for q in p.relative_to(repo).parts[:-1])
    }
    in_dots = [d.split("/") for d in dots]
    untracked = {unit_of(p) for p in untracked_files(repo) if not any(p.split("/")[: len(d)] == d for d in in_dots)}
    unlinked = {
        str(d.relative_to(repo))
        for top in ("vars", "sops/secrets")
        for d in (p.parent for p in (repo / top).rglob("secret") if p.is_file())
        if not any((d / kind).is_dir() and os.listdir(d / kind) for kind in ("users", "machines", "groups"))
        and not any(q.startswith(".") for q in d.relative_to(repo).parts)
    }
    lock = repo / ".git/index.lock"
    return {
        "missing": {gid for gid, s in states.items() if s == "missing"},
        "untracked": untracked,
        "leftovers": dots,
        "index_lock": {str(lock)} if lock.exists() else set(),
        "unlinked": unlinked,
        "states": set(states.items()),
    }


def check_says(repo: Path, env: dict[str, str], fleet: Fleet) -> tuple[int, dict[str, set]]:
    out = fleet_cli(repo, env, "vars", "check")
    assert b"Traceback" not in out.stderr and not out.stderr, out.stderr.decode()
    said: dict[str, set] = {k: set() for k in ("missing", "untracked", "leftovers", "index_lock", "unlinked")}
    for line in out.stdout.decode().splitlines():
        if m := _MISSING.match(line):
            machine, name = m.group(1), m.group(2)
            g = next(g for g in fleet.generators_of(machine) if g.name == name)
            said["missing"].add(generator_id(g, machine))
        elif m := _UNTRACKED.match(line):
            said["untracked"].add(m.group(1))
        elif m := _LEFTOVER.match(line):
            said["leftovers"].add(m.group(1))
        elif m := _INDEX_LOCK.match(line):
            said["index_lock"].add(m.group(1))
        elif m := _UNLINKED.match(line):
            said["unlinked"].add(m.group(1))
        else:
            assert line == OK, f"check said something unexpected: {line!r}"
    return out.returncode, said


def one_seed(template: Path, fleet: Fleet, identity: str, env: dict[str, str], seed: int, span: float) -> str:
    repo = template.parent / f"seed-{seed}"
    shutil.copytree(template, repo, symlinks=True)
    delay = random.Random(seed).uniform(0.3 * span, 1.6 * span)
    proc = spawn(repo, {**env, "FLEET_TEST_DELAY": DELAY}, "vars", "generate")
    time.sleep(delay)
    kill_group(proc)

    truth = disk_truth(repo, fleet, identity)
    code, said = check_says(repo, env, fleet)
    for key in said:
        assert said[key] == truth[key], (seed, key, said[key], truth[key])
    clean = not any(truth[k] for k in said)
    assert code == (0 if clean else 1), (seed, code)
    states = {s for _, s in truth["states"]}

    out = fleet_cli(repo, env, "vars", "generate")
    assert out.returncode == 0, (seed, out.stderr.decode())
    code, said = check_says(repo, env, fleet)
    assert code == 0 and not any(said.values()), (seed, said)
    assert {s for _, s in generator_states(repo, fleet, identity).items()} == {"complete"}
    shutil.rmtree(repo)
    if states == {"missing"}:
        return "none"
    return "partial" if "missing" in states else "complete"


def test_sigkill_at_random_points_of_a_generate(tmp_path: Path) -> None:
    template, env = cheap_project(tmp_path / "template", machines=MACHINES)
    fleet = load_fleet(template)
    assert len(fleet_graph(fleet)) == 4 * MACHINES + 2  # and the shared CA and m0's slow one
    identity = env["SOPS_AGE_KEY"]
    # a whole run, not killed: how long the kills are spread over
    reference = tmp_path / "reference"
    shutil.copytree(template, reference, symlinks=True)
    started = time.monotonic()
    assert fleet_cli(reference, {**env, "FLEET_TEST_DELAY": DELAY}, "vars", "generate").returncode == 0
    span = time.monotonic() - started
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda s: one_seed(template, fleet, identity, env, s, span), SEEDS))
    # the control: kills landed before, during and after the writing, not all on one side of it
    assert "partial" in outcomes and "complete" in outcomes, outcomes


def test_two_generates_and_a_set_at_once_lose_nothing(tmp_path: Path) -> None:
    project, env = cheap_project(tmp_path / "p", machines=4)
    fleet = load_fleet(project)
    first = spawn(project, {**env, "FLEET_TEST_SLOW": "1.5"}, "vars", "generate")
    wait_for(lambda: lock_holder(project) == first.pid or first.poll() is not None, what="the first generate")
    second = spawn(project, env, "vars", "generate")
    setter = spawn(project, env, "vars", "set", "m1", "b/p", stdin=b"set by hand")
    results = {name: p.communicate(timeout=60) for name, p in (("first", first), ("second", second), ("set", setter))}
    assert [first.returncode, second.returncode, setter.returncode] == [0, 0, 0], results
    # the control: the other two writers really ran into the first
    for name in ("second", "set"):
        assert f"waiting for process {first.pid} (`fleet vars generate`)".encode() in results[name][1], results[name]
    generated = results["first"][0].decode().splitlines()
    assert len(generated) == 4 * 4 + 2 and results["second"][0] == b"every generator is up to date\n"
    assert fleet_cli(project, env, "vars", "get", "m1", "b/p").stdout == b"set by hand"
    assert set(generator_states(project, fleet, env["SOPS_AGE_KEY"]).values()) == {"complete"}
    assert check_says(project, env, fleet) == (0, {k: set() for k in check_says(project, env, fleet)[1]})


def _namespace(setup: str, steps: list[dict], env: dict[str, str], cwd: Path) -> list[dict]:
    """Run `setup` (sh, as root) and then each step in a private mount namespace, in `cwd`; each
    step is {"sh": script} or {"argv": [...], "stdin": str}; returns their exit codes and output.
    The spec goes on stdin: the environment holds the admin key."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs or a read-only bind mount needs root")
    require(("unshare", "util-linux"), ("mount", "mount"))
    driver = (
        "import json, subprocess, sys\n"
        "spec = json.load(sys.stdin)\n"
        "subprocess.run(['sh', '-euc', spec['setup']], check=True)\n"
        "out = []\n"
        "for s in spec['steps']:\n"
        "    argv = ['sh', '-c', s['sh']] if 'sh' in s else s['argv']\n"
        "    d = subprocess.run(argv, input=s.get('stdin', '').encode(), capture_output=True, env=spec['env'],"
        " cwd=spec['cwd'])\n"
        "    out.append({'rc': d.returncode, 'out': d.stdout.decode(errors='replace'),"
        " 'err': d.stderr.decode(errors='replace')})\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", driver],
        input=json.dumps({"setup": setup, "steps": steps, "env": env, "cwd": str(cwd)}).encode(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def test_a_full_disk_fails_clearly_changes_nothing_and_the_next_run_completes(tmp_path: Path) -> None:
    project, env = cheap_project(tmp_path / "p", machines=3)
    assert fleet_cli(project, env, "vars", "generate", "m0").returncode == 0  # a store with something in it
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    m = str(mnt)

    def copy(to: str) -> dict:
        return {"sh": f"mkdir -p {out}/{to} && cp -a {m}/vars {m}/sops {out}/{to}/"}

    results = _namespace(
        f"mount -t tmpfs -o size=16m tmpfs {m} && cp -a {project}/. {m}/",
        [
            {"sh": f"cat /dev/zero > {m}/filler || true; sync"},
            {"sh": f"df -k --output=avail {m} | tail -1"},
            copy("before"),
            {"argv": cli_argv(mnt, "vars", "generate")},  # m1 and m2 need machine keys first
            {"argv": cli_argv(mnt, "vars", "generate", "m0", "--regenerate")},  # m0's generators only
            {"argv": cli_argv(mnt, "vars", "set", "m0", "a/s"), "stdin": "by hand"},
            copy("after"),
            {"sh": f"rm {m}/filler"},
            {"argv": cli_argv(mnt, "vars", "generate")},
            {"argv": cli_argv(mnt, "vars", "check")},
            {"sh": f"git -C {m} ls-files --others -- vars sops"},
        ],
        env,
        mnt,
    )
    _, free, _, keys, regenerate, set_, _, _, again, check, untracked = results
    assert int(free["out"]) < 8, free  # the control: the disk really was full …
    for r in (keys, regenerate, set_):  # … and each write failed on it, clearly
        assert r["rc"] == 1 and r["err"].startswith("error: "), r
        assert "no space left on the device" in r["err"] and "Traceback" not in r["err"], r["err"]
    assert keys["err"].startswith("error: the age keys of machines m1, m2: cannot write ")
    assert re.match(r"error: generator \S+ \((shared|machine m0)\): cannot write ", regenerate["err"]), regenerate
    assert "run `fleet vars generate` again" in regenerate["err"]
    assert set_["err"].startswith("error: machine 'm0': a/s: cannot write ")
    assert snapshot(out / "before") == snapshot(out / "after")  # vars/ and sops/ unchanged
    assert again["rc"] == 0, again["err"]
    assert check["rc"] == 0 and check["out"].strip() == OK, check
    assert untracked["out"] == ""


def test_a_read_only_repository_refuses_writes_clearly_and_serves_reads(tmp_path: Path) -> None:
    project, env = cheap_project(tmp_path / "p", machines=2)
    assert fleet_cli(project, env, "vars", "generate").returncode == 0
    before = snapshot(project)
    p = str(project)
    writes = [
        ("vars", "generate", "--regenerate"),
        ("vars", "set", "m0", "a/p"),
        ("vars", "fix"),
        ("vars", "keygen", "--name", "bob", "--repo", p),  # keygen writes --repo (default: .), not the project
    ]
    reads = [("vars", "check"), ("vars", "list", "m0"), ("vars", "get", "m0", "a/s"), ("plan",), ("plan", "--json")]
    results = _namespace(
        f"mount --bind {p} {p} && mount -o remount,bind,ro {p}",
        [
            {"sh": f"touch {p}/probe"},
            *({"argv": cli_argv(project, *args), "stdin": "new value"} for args in writes),
            *({"argv": cli_argv(project, *args)} for args in reads),
        ],
        env,
        project,
    )
    probe, written, read = results[0], results[1 : 1 + len(writes)], results[1 + len(writes) :]
    assert probe["rc"] != 0 and "Read-only file system" in probe["err"]  # the control: writing fails there
    for args, r in zip(writes, written, strict=True):
        assert r["rc"] == 1 and r["err"].startswith("error: ") and "Traceback" not in r["err"], (args, r)
        assert "the repository is read-only" in r["err"] and "run it where the repository is writable" in r["err"]
    for args, r in zip(reads, read, strict=True):
        assert r["rc"] == 0 and "Traceback" not in r["err"], (args, r)
    assert read[0]["out"].strip() == OK
    assert read[2]["out"].startswith("secret-")
    assert json.loads(read[4]["out"])["machines"].keys() == {"m0", "m1"}
    assert snapshot(project) == before
    # outside the namespace the same writes go through: what stopped them was the read-only mount
    for args in writes:
        done = fleet_cli(project, env, *args, stdin=b"new value")
        assert done.returncode == 0, (args, done.stderr.decode())
