"""The RAM temp folder of a generate killed with SIGKILL (it holds the generator's plaintexts) is
removed by the next run, and only folders of dead runs are: a running generate's folder stays."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fleet_sdk.fs.private import base as _tmp_base

from .fault_tools import cheap_project, kill_group, spawn, wait_for
from .vars_project import fleet_cli

HOLD = """
def _hold(inputs, prompts, out):
    (out / "s").write_text("plain-" + secrets.token_hex(16))  # the plaintext is in the temp folder now
    time.sleep(float(os.environ.get("FLEET_TEST_HOLD", "0")))


EXTRA = (Generator(name="hold", python=_hold, files=(GeneratorFile(name="s"),)),)
"""


def folders_of(pid: int) -> list[Path]:
    return [p for base in {_tmp_base(), tempfile.gettempdir()} for p in Path(base).glob(f"fleet-vars-{pid}-*")]


def holding(project: Path, env: dict[str, str]):
    """A generate of `hold` that has written its plaintext and waits; (process, plaintext file)."""
    proc = spawn(project, {**env, "FLEET_TEST_HOLD": "60"}, "vars", "generate", "-g", "hold")
    try:
        wait_for(lambda: any((f / "s").is_file() for f in folders_of(proc.pid)) or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
    except BaseException:
        kill_group(proc)
        raise
    (folder,) = folders_of(proc.pid)
    return proc, folder / "s"


def test_a_killed_runs_plaintexts_are_removed_by_the_next_run_and_a_live_runs_stay(tmp_path: Path) -> None:
    live_project, live_env = cheap_project(tmp_path / "live", machines=1, extra=HOLD)
    project, env = cheap_project(tmp_path / "p", machines=1, extra=HOLD)
    assert fleet_cli(live_project, live_env, "vars", "generate").returncode == 0
    assert fleet_cli(project, env, "vars", "generate").returncode == 0
    live, live_file = holding(live_project, live_env)
    try:
        victim, victim_file = holding(project, env)
        plaintext = victim_file.read_bytes()
        kill_group(victim, reap=False)
        assert victim_file.read_bytes() == plaintext  # the fault bites: SIGKILL left the plaintext in RAM
        victim.communicate()  # reaped: its folder is stale now, not before (other runs alongside)
        out = fleet_cli(project, env, "vars", "generate", "-g", "hold")
        assert out.returncode == 0, out.stderr.decode()
        assert not victim_file.parent.exists() and not folders_of(victim.pid)
        assert live_file.is_file() and live.poll() is None  # a running generate's folder is not touched
    finally:
        kill_group(live)
    assert live_file.is_file()  # until the next run
    assert fleet_cli(project, env, "vars", "fix").returncode == 0  # fix cleans up as well
    assert not live_file.parent.exists()
