"""vars generation end to end with scripted generators: store layout, idempotence, regeneration,
atomicity on failure and kill, the repository lock, parallelism, prompts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.errors import SpecError
from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine

from .vars_project import fleet_cli, make_project, snapshot

pytestmark = pytest.mark.integration

STACK = """
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine, Prompt

key = Generator(name="key", files=(GeneratorFile(name="k"), GeneratorFile(name="k.pub", secret=False)),
                script='head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\\\n" > $out/k; cat $out/k | sha256sum | cut -c1-8 > $out/k.pub')
cert = Generator(name="cert", dependencies=("key", "ca"), files=(GeneratorFile(name="c", secret=False),),
                 script='cat $in/key/k.pub $in/ca/ca.pub > $out/c')
ca = Generator(name="ca", share=True, files=(GeneratorFile(name="ca", deploy=False), GeneratorFile(name="ca.pub", secret=False)),
               script='echo secret-ca > $out/ca; echo pub-ca > $out/ca.pub')
pw = Generator(name="pw", prompts=(Prompt(name="word", type="hidden"),), files=(GeneratorFile(name="hash", secret=False),),
               script='sha256sum < $prompts/word | cut -c1-16 > $out/hash')
EXTRA = []
{extra}

def build(settings):
    return Fleet(name="demo", machines=tuple(
        Machine(name=f"m{{i}}", generators=(key, cert, ca, pw, *EXTRA)) for i in range({machines})))
"""


def project(tmp_path: Path, extra: str = "", machines: int = 3) -> tuple[Path, dict[str, str]]:
    root, env = make_project(tmp_path / "p", STACK.format(extra=extra, machines=machines))
    env["FLEET_PROMPT_PW_WORD"] = "correct horse"
    return root, env


def test_generate_stores_clan_layout_and_second_run_writes_nothing(tmp_path: Path) -> None:
    root, env = project(tmp_path)
    out = fleet_cli(root, env, "vars", "generate", "--json")
    assert out.returncode == 0, out.stderr.decode()
    public = json.loads(out.stdout)
    assert set(public) == {"m0", "m1", "m2"}
    assert public["m0"]["ca/ca.pub"] == "pub-ca\n" and public["m0"]["cert/c"].endswith("pub-ca\n")
    assert b"correct horse" not in out.stdout + out.stderr
    secret = root / "vars/per-machine/m1/key/k/secret"
    tree = SopsTree(root)
    machine_key = tree.machine_private_key("m1", [env["SOPS_AGE_KEY"]])
    plain = sops.decrypt(secret.read_bytes(), [machine_key])
    assert plain == sops.decrypt(secret.read_bytes(), [env["SOPS_AGE_KEY"]]) and len(plain) == 32
    assert os.readlink(secret.parent / "machines/m1") == "../../../../../../sops/machines/m1"
    ca = root / "vars/shared/ca/ca"
    assert sorted(p.name for p in (ca / "users").iterdir()) == ["admin"] and not (ca / "machines").exists()
    assert (root / "vars/shared/ca/ca.pub/value").read_bytes() == b"pub-ca\n"
    git = ["git", "-C", str(root), "status", "--porcelain"]
    status = subprocess.run(git, capture_output=True, text=True, check=True).stdout
    assert "A  vars/per-machine/m0/key/k/secret" in status and "A  sops/machines/m0/key.json" in status
    assert fleet_cli(root, env, "vars", "check").returncode == 0
    before = snapshot(root)
    again = fleet_cli(root, env, "vars", "generate")
    assert again.returncode == 0 and b"up to date" in again.stdout
    assert snapshot(root) == before


def test_regenerating_one_generator_changes_it_and_its_dependents_only(tmp_path: Path) -> None:
    root, env = project(tmp_path)
    assert fleet_cli(root, env, "vars", "generate").returncode == 0
    before = snapshot(root)
    out = fleet_cli(root, env, "vars", "generate", "m1", "-g", "key", "--regenerate")
    assert out.returncode == 0, out.stderr.decode()
    after = snapshot(root)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed and all(k.startswith(("vars/per-machine/m1/key/", "vars/per-machine/m1/cert/")) for k in changed)
    assert any(k.startswith("vars/per-machine/m1/cert/") for k in changed)


def test_a_failing_or_killed_generator_leaves_no_trace(tmp_path: Path) -> None:
    extra = """
EXTRA = [Generator(name="flaky", files=(GeneratorFile(name="a"), GeneratorFile(name="b")),
                   script='echo one > $out/a; sleep ${FLAKY_SLEEP:-0}; exit 1')]
"""
    root, env = project(tmp_path, extra, machines=1)
    # a complete store first, so that "no trace" also means "the old generator is untouched"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleet_sdk",
            "vars",
            "generate",
            "--project",
            str(root),
            "--stack",
            "dev",
            "--no-sandbox",
        ],
        env={**env, "FLAKY_SLEEP": "30"},
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.time() + 20
    others = [root / "vars/per-machine/m0" / g for g in ("key", "cert", "pw")] + [root / "vars/shared/ca"]
    while time.time() < deadline and not all(p.exists() for p in others):
        time.sleep(0.1)
    assert all(p.exists() for p in others) and proc.poll() is None  # only "flaky" is still running
    before = snapshot(root)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert snapshot(root) == before  # the killed generator stored nothing
    assert not (root / "vars/per-machine/m0/flaky").exists()
    # the next run cleans up after the killed one and generates the rest
    quick = {**env, "FLEET_PROMPT_PW_WORD": "x"}
    out = fleet_cli(root, quick, "vars", "generate", "-g", "pw")
    assert out.returncode == 0, out.stderr.decode()
    assert not [p for p in Path("/dev/shm").glob(f"fleet-vars-{proc.pid}-*")]
    assert not list((root / "vars").rglob(".*.new-*"))
    # a generator that fails after writing one file stores nothing, and earlier ones stay
    before = snapshot(root)
    out = fleet_cli(root, env, "vars", "generate", "-g", "flaky", "--no-sandbox")
    assert out.returncode == 1 and b"generator flaky (machine m0): its script failed with exit code 1" in out.stderr
    assert snapshot(root) == before


def test_failing_regeneration_keeps_the_old_generator(tmp_path: Path) -> None:
    extra = """
import os
EXTRA = [Generator(name="once", files=(GeneratorFile(name="v", secret=False),),
                   script='if [ -n "${FAIL:-}" ]; then echo half > $out/v; exit 3; fi; echo good > $out/v')]
"""
    root, env = project(tmp_path, extra, machines=1)
    assert fleet_cli(root, env, "vars", "generate").returncode == 0
    before = snapshot(root)
    out = fleet_cli(root, {**env, "FAIL": "1"}, "vars", "generate", "-g", "once", "--no-sandbox")
    assert out.returncode == 1
    assert b"generator once (machine m0): its script failed with exit code 3; nothing of it was stored" in out.stderr
    assert b"Traceback" not in out.stderr
    assert snapshot(root) == before


def test_two_concurrent_runs_both_succeed_and_leave_a_healthy_store(tmp_path: Path) -> None:
    root, env = project(tmp_path, machines=6)
    argv = [sys.executable, "-m", "fleet_sdk", "vars", "generate", "--project", str(root), "--stack", "dev"]
    procs = [
        subprocess.Popen(argv, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1].decode() for r in results]
    outputs = [r[0].decode() for r in results]
    assert sum(o.count("generated ") for o in outputs) == 6 * 3 + 1  # each generator ran exactly once
    check = fleet_cli(root, env, "vars", "check")
    assert check.returncode == 0, check.stdout.decode()


def test_independent_generators_run_in_parallel(tmp_path: Path) -> None:
    from fleet_sdk.vars.generate import GenerateOptions, generate

    private, public = sops.generate()
    repo = tmp_path / "repo"
    SopsTree(repo).write_keys("users", "admin", [__import__("fleet_sdk.sops.tree").sops.tree.KeyEntry(public)])
    slow = Generator(
        name="slow", files=(GeneratorFile(name="v", secret=False),), script="sleep 0.5; echo done > $out/v"
    )
    fleet = Fleet(name="f", machines=tuple(Machine(name=f"m{i}", generators=(slow,)) for i in range(4)))
    start = time.perf_counter()
    result = generate(repo, fleet, GenerateOptions(identities=[private], jobs=4))
    elapsed = time.perf_counter() - start
    assert len(result.generated) == 4
    assert elapsed < 1.6, f"4 generators of 0.5 s took {elapsed:.2f} s: not parallel"


def test_prompts_never_come_from_arguments_and_missing_ones_say_what_to_set(tmp_path: Path) -> None:
    root, env = project(tmp_path, machines=1)
    del env["FLEET_PROMPT_PW_WORD"]
    out = fleet_cli(root, env, "vars", "generate")
    assert out.returncode == 1
    assert b"generator 'pw' needs a value for prompt 'word': set FLEET_PROMPT_PW_WORD" in out.stderr
    (root / "answers.json").write_text(json.dumps({"pw": {"word": "from file"}}))
    out = fleet_cli(root, env, "vars", "generate", "--prompts-file", str(root / "answers.json"))
    assert out.returncode == 0, out.stderr.decode()


def test_cycles_and_bad_dependencies_are_refused_naming_them() -> None:
    a = Generator(name="a", dependencies=("b",), files=(GeneratorFile(name="x"),), script="true")
    b = Generator(name="b", dependencies=("a",), files=(GeneratorFile(name="x"),), script="true")
    with pytest.raises(SpecError, match="cycle: a -> b -> a"):
        Fleet(name="f", machines=(Machine(name="m", generators=(a, b)),))
    lonely = Generator(name="c", dependencies=("ghost",), files=(GeneratorFile(name="x"),), script="true")
    with pytest.raises(SpecError, match="dependency 'ghost'"):
        Fleet(name="f", machines=(Machine(name="m", generators=(lonely,)),))
    s1 = Generator(name="s", share=True, files=(GeneratorFile(name="x"),), script="echo 1 > $out/x")
    s2 = Generator(name="s", share=True, files=(GeneratorFile(name="x"),), script="echo 2 > $out/x")
    with pytest.raises(SpecError, match="machines 'm' and 'n' declare this shared generator differently"):
        Fleet(name="f", machines=(Machine(name="m", generators=(s1,)), Machine(name="n", generators=(s2,))))


def test_list_get_set_and_fix(tmp_path: Path) -> None:
    root, env = project(tmp_path, machines=2)
    assert fleet_cli(root, env, "vars", "generate").returncode == 0
    listing = fleet_cli(root, env, "vars", "list", "m0").stdout.decode().splitlines()
    assert "key/k: ********" in listing and "ca/ca.pub: pub-ca" in listing
    got = fleet_cli(root, env, "vars", "get", "m0", "ca/ca")
    assert got.stdout == b"secret-ca\n"
    assert fleet_cli(root, env, "vars", "set", "m0", "key/k", stdin=b"replaced").returncode == 0
    assert fleet_cli(root, env, "vars", "get", "m0", "key/k").stdout == b"replaced"
    assert fleet_cli(root, env, "vars", "set", "m0", "key/k", stdin=b"").returncode == 1
    # a machine link removed by hand: check reports it, fix restores it
    (root / "vars/per-machine/m0/key/k/machines/m0").unlink()
    check = fleet_cli(root, env, "vars", "check")
    assert check.returncode == 1 and b"m0: key/k:" in check.stdout
    assert fleet_cli(root, env, "vars", "fix").returncode == 0
    assert fleet_cli(root, env, "vars", "check").returncode == 0


def test_the_sandbox_has_no_network_and_is_required_unless_disabled(monkeypatch) -> None:
    from fleet_sdk.errors import GeneratorError
    from fleet_sdk.vars.execute import run_generator
    from fleet_sdk.vars.store import GeneratorId

    probe = Generator(
        name="probe",
        files=(GeneratorFile(name="net", secret=False), GeneratorFile(name="who", secret=False)),
        script="tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > $out/net; id -u > $out/who; ls / > /dev/null",
    )
    out = run_generator(GeneratorId("probe", "m"), probe, {}, {}, sandbox=True)
    assert out["net"] == b"lo\n"  # only loopback: no network
    assert out["who"] == b"1000\n"
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(GeneratorError, match="install bubblewrap or pass --no-sandbox"):
        run_generator(GeneratorId("probe", "m"), probe, {}, {}, sandbox=True)
