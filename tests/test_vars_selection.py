"""Which generators a run selects when a shared one runs: its generated dependents everywhere (they
would be stale), but not another machine's dependent that was never generated — its own inputs may
be missing, so `fleet vars generate m0` on a fresh fleet failed on m1's certificate."""

from __future__ import annotations

from pathlib import Path

from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine
from fleet_sdk.vars.selection import select
from fleet_sdk.vars.store import GeneratorId

from .fault_tools import cheap_project
from .vars_project import fleet_cli

ca = Generator(name="ca", share=True, files=(GeneratorFile(name="ca"),), script="true")
key = Generator(name="key", files=(GeneratorFile(name="k"),), script="true")
cert = Generator(name="cert", dependencies=("ca", "key"), files=(GeneratorFile(name="c"),), script="true")
FLEET = Fleet(name="f", machines=tuple(Machine(name=m, generators=(ca, key, cert)) for m in ("m0", "m1")))


def chosen(complete: set[GeneratorId], machines: list[str], generators: list[str] | None = None) -> set[str]:
    nodes = select(FLEET, lambda n: n.gid in complete, machines, generators)
    return {f"{n.gid.name}@{n.gid.machine or 'shared'}" for n in nodes}


def test_a_never_generated_dependent_of_another_machine_waits_for_its_own_run() -> None:
    assert chosen(set(), ["m0"]) == {"ca@shared", "key@m0", "cert@m0"}


def test_generated_dependents_everywhere_follow_a_regenerated_shared_generator() -> None:
    everything = {GeneratorId("ca", None)} | {GeneratorId(g, m) for g in ("key", "cert") for m in ("m0", "m1")}
    assert chosen(everything, ["m0"], ["ca"]) == {"ca@shared", "cert@m0", "cert@m1"}
    # a stale dependent whose other input is gone brings that input too
    assert chosen(everything - {GeneratorId("key", "m1")}, ["m0"], ["ca"]) == {
        "ca@shared", "cert@m0", "cert@m1", "key@m1",
    }  # fmt: skip


def test_generating_one_machine_of_a_fresh_fleet_works_end_to_end(tmp_path: Path) -> None:
    project, env = cheap_project(tmp_path / "p", machines=2)
    out = fleet_cli(project, env, "vars", "generate", "m0")
    assert out.returncode == 0, out.stderr.decode()  # was: generator cert (machine m1): input a/s is missing
    assert not (project / "vars/per-machine/m1").exists()
    assert fleet_cli(project, env, "vars", "generate", "m1").returncode == 0
    assert fleet_cli(project, env, "vars", "check").returncode == 0
