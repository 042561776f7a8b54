"""No secret value leaves the store in plaintext: not in temp folders (a private TMPDIR, /tmp,
/dev/shm), not in any child process's argv, not in the CLI's output or `fleet plan --json`, after
normal runs and after runs killed with SIGKILL (a generate, a `fleet zerotier admit`) once the next
run has cleaned up. The secrets are known by decrypting the store with the admin key."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from fleet_sdk.fs.private import base as _tmp_base

from .fault_tools import (
    ArgvRecorder,
    kill_group,
    load_fleet,
    secret_values,
    spawn,
    wait_for,
    wrap_tools,
)
from .tools import require
from .vars_project import fleet_cli, make_project

pytestmark = pytest.mark.integration

STACK = """
import os, secrets, time
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine, Prompt
from fleet_sdk.vars import stock as builtins
def _hold(inputs, prompts, out):
    (out / "s").write_text("held-" + secrets.token_hex(16))
    time.sleep(float(os.environ.get("FLEET_TEST_HOLD", "0")))


token = Generator(name="token", files=(GeneratorFile(name="t"), GeneratorFile(name="t.hash", secret=False)),
                  script="head -c 24 /dev/urandom | base64 > $out/t; sha256sum < $out/t | cut -c1-16 > $out/t.hash")
word = Generator(name="word", prompts=(Prompt(name="w", type="hidden", persist=True),),
                 files=(GeneratorFile(name="w.hash", secret=False),),
                 script="sha256sum < $prompts/w | cut -c1-16 > $out/w.hash")
hold = Generator(name="hold", python=_hold, files=(GeneratorFile(name="s"),))


def build(settings):
    return Fleet(name="demo", machines=tuple(
        Machine(name=f"m{i}", generators=(builtins.openssh(), builtins.deploy_key(), builtins.emergency_access(),
                                          builtins.user_password("root", prompt=False), token, word, hold))
        for i in range(2)))
"""
PROMPT = "correct horse battery staple 0451"
TOOLS = ["git", "bwrap", "bash", "ssh", "ssh-keygen", "openssl", "age"]


@pytest.fixture
def leaky(tmp_path: Path):
    """(project, env with a private TMPDIR and argv-logging wrappers first on PATH, wrapper log)."""
    project, env = make_project(tmp_path / "p", STACK)
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    log = wrap_tools(tmp_path / "wrappers", TOOLS)
    env.update(
        TMPDIR=str(tmpdir),
        PATH=f"{tmp_path / 'wrappers'}:{env['PATH']}",
        PYTHONDONTWRITEBYTECODE="1",
        FLEET_PROMPT_WORD_W=PROMPT,
    )
    return project, env, log


def needles(secrets: dict[str, bytes]) -> dict[str, bytes]:
    """Each secret as it would appear written out: its bytes, without a final newline."""
    out = {}
    for name, value in secrets.items():
        needle = value.rstrip(b"\n")
        assert len(needle) >= 12, f"{name} is too short to search for"
        out[name] = needle
    return out


def temp_files(since: float, tmpdir: Path) -> dict[str, bytes]:
    """Regular files changed since `since` in the temp folders (the private TMPDIR whatever their age)."""
    found = {}
    for root in {Path(tempfile.gettempdir()), Path("/dev/shm"), Path(_tmp_base()), tmpdir}:
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                    if (st.st_mtime >= since or path.startswith(str(tmpdir))) and st.st_size < 16 << 20:
                        with open(path, "rb") as f:
                            found[path] = f.read()
                except OSError:  # gone meanwhile, a socket, or not ours to read
                    continue
    return found


def leaks(secrets: dict[str, bytes], places: dict[str, bytes]) -> list[str]:
    return [
        f"{name} in {where}"
        for name, needle in needles(secrets).items()
        for where, data in places.items()
        if needle in data
    ]


def argv_places(seen: set[bytes]) -> dict[str, bytes]:
    return {f"argv {argv[:80]!r}": argv for argv in seen}


def test_normal_runs_leave_no_secret_anywhere(leaky, tmp_path: Path) -> None:
    require(("bwrap", "bubblewrap"))
    project, env, log = leaky
    since = time.time() - 1
    recorder = ArgvRecorder(log)
    outputs = {}
    for args, stdin in [
        (("vars", "generate"), None),
        (("vars", "set", "m1", "token/t"), b"set-by-hand-" + os.urandom(12).hex().encode()),
        (("vars", "generate", "-g", "openssh", "--regenerate"), None),
        (("vars", "check"), None),
        (("vars", "list", "m0"), None),
        (("plan", "--json"), None),
        (("vars", "fix"), None),
    ]:
        out = fleet_cli(project, env, *args, stdin=stdin)
        assert out.returncode == 0, (args, out.stderr.decode())
        outputs[f"stdout of {args}"] = out.stdout
        outputs[f"stderr of {args}"] = out.stderr
    seen = recorder.stop()
    secrets = secret_values(project, load_fleet(project), env["SOPS_AGE_KEY"])
    assert len(secrets) >= 2 * 7 + 1 and any(v.startswith(b"set-by-hand-") for v in secrets.values())
    assert PROMPT.encode() in secrets.values()  # the persisted prompt
    # the controls: the recorder saw the children (sandboxed scripts included) and the search finds a secret
    assert any(b"bwrap" in a for a in seen) and any(b"update-index" in a for a in seen)
    assert any(a.startswith(b"sha256sum") for a in seen)
    got = fleet_cli(project, env, "vars", "get", "m0", "openssh/ssh.id_ed25519")
    assert leaks(secrets, {"get": got.stdout})
    places = {**temp_files(since, Path(env["TMPDIR"])), **argv_places(seen), **outputs}
    assert not leaks(secrets, places)


def test_a_killed_generates_plaintext_is_gone_after_the_next_run(leaky) -> None:
    project, env, log = leaky
    assert fleet_cli(project, env, "vars", "generate").returncode == 0
    since = time.time() - 1
    recorder = ArgvRecorder(log)
    proc = spawn(project, {**env, "FLEET_TEST_HOLD": "60"}, "vars", "generate", "-g", "hold", "--regenerate")

    def folders() -> list[Path]:
        return [p for b in {_tmp_base(), tempfile.gettempdir()} for p in Path(b).glob(f"fleet-vars-{proc.pid}-*/s")]

    wait_for(lambda: folders() or proc.poll() is not None, what="the held plaintext")
    held = {"killed run's hold/s": folders()[0].read_bytes()}
    kill_group(proc, reap=False)
    # the control: SIGKILL left the plaintext in RAM, where the scan finds it
    assert leaks(held, temp_files(since, Path(env["TMPDIR"])))
    proc.communicate()  # reaped: now its folder is stale, for the next run to remove
    out = fleet_cli(project, env, "vars", "generate")
    assert out.returncode == 0, out.stderr.decode()
    seen = recorder.stop()
    secrets = {**secret_values(project, load_fleet(project), env["SOPS_AGE_KEY"]), **held}
    places = {**temp_files(since, Path(env["TMPDIR"])), **argv_places(seen), "stdout": out.stdout, "stderr": out.stderr}
    assert not leaks(secrets, places)


ZT_STACK = """
from fleet_sdk.spec import Fleet, Machine, Role, ServiceInstance
from fleet_sdk.vars import stock as builtins
zt = ServiceInstance(name="zt", module="zerotier",
                     roles={"controller": Role(machines=("ctl",)), "peer": Role(machines=("p0",))})


def build(settings):
    return Fleet(name="demo", instances=(zt,), machines=(
        Machine(name="ctl", target_host="root@ctl.example", generators=(builtins.deploy_key(),)),
        Machine(name="p0")))
"""


def test_a_killed_zerotier_admit_leaves_no_deploy_key(tmp_path: Path) -> None:
    project, env = make_project(tmp_path / "p", ZT_STACK)
    tmpdir, bin_dir = tmp_path / "tmpdir", tmp_path / "bin"
    tmpdir.mkdir()
    bin_dir.mkdir()
    # a stand-in ssh (there is no controller here): records its argv, takes the script, then waits
    ssh = bin_dir / "ssh"
    ssh.write_text(
        f"#!/bin/sh\nprintf '%s\\0' \"$@\" >> {bin_dir}/ssh.log\necho $$ >> {bin_dir}/pids\n"
        "cat > /dev/null\nexec sleep ${HANG:-0}\n"
    )
    ssh.chmod(0o755)
    env.update(TMPDIR=str(tmpdir), PATH=f"{bin_dir}:{env['PATH']}", PYTHONDONTWRITEBYTECODE="1")
    assert fleet_cli(project, env, "vars", "generate").returncode == 0
    since = time.time() - 1
    recorder = ArgvRecorder()
    proc = spawn(project, {**env, "HANG": "60"}, "zerotier", "admit", "zt")

    def key_file() -> list[Path]:
        return list(Path(_tmp_base()).glob(f"fleet-ssh-{proc.pid}-*/id_ed25519"))

    wait_for(lambda: (key_file() and (bin_dir / "ssh.log").exists()) or proc.poll() is not None, what="ssh")
    assert proc.poll() is None, proc.communicate()
    kill_group(proc, reap=False)
    try:
        secrets = secret_values(project, load_fleet(project), env["SOPS_AGE_KEY"])
        # the control: the killed run left the deploy key in its private RAM folder
        assert [k for k in leaks(secrets, temp_files(since, tmpdir)) if "deploy-key" in k]
        proc.communicate()  # reaped: now its folder is stale
        out = fleet_cli(project, env, "zerotier", "admit", "zt")  # the next run removes it
        assert out.returncode == 0, out.stderr.decode()
        seen = recorder.stop() | set((bin_dir / "ssh.log").read_bytes().split(b"\0"))
        assert any(b"-i" in a for a in seen)  # the recorder saw ssh's argv
        places = {**temp_files(since, tmpdir), **argv_places(seen), "stdout": out.stdout, "stderr": out.stderr}
        assert not leaks(secrets, places)
    finally:
        for pid in (bin_dir / "pids").read_text().split():  # the stand-in ran in a session of its own
            subprocess.run(["kill", "-9", pid], check=False)
