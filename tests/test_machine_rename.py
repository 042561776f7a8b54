"""Renaming a machine: `renamed_from` in the spec (checked; Pulumi aliases on its component, so the
offline diff keeps its server and install), and `fleet machine rename OLD NEW` moving its vars, keys,
member links and records in clan's layout, after which its secrets still decrypt with its key."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk import sops
from fleet_sdk.errors import ConfigError, SpecError
from fleet_sdk.review import plan as planning
from fleet_sdk.review.diff import diff_plans
from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.spec import Fleet, Machine
from fleet_sdk.tools.runner import LOCAL
from fleet_sdk.vars.rename import rename_machine

from .test_plan_diff import DEMO_STACK, SERVER, write_demo
from .vars_project import fleet_cli, make_project

# --- the spec ---


def test_renamed_from_is_checked_naming_the_machine() -> None:
    with pytest.raises(SpecError, match=r"machine 'web': renamed_from: 'Bad_Name!'"):
        Machine(name="web", renamed_from=("Bad_Name!",))
    with pytest.raises(SpecError, match="machine 'web': renamed_from: 'web' is the machine's own name"):
        Machine(name="web", renamed_from=("web",))
    with pytest.raises(SpecError, match="claimed by machine 'a' too"):
        Fleet(name="f", machines=(Machine(name="a", renamed_from=("old",)), Machine(name="b", renamed_from=("old",))))
    with pytest.raises(SpecError, match="'b' is the name of another machine"):
        Fleet(name="f", machines=(Machine(name="a", renamed_from=("b",)), Machine(name="b")))
    assert Machine(name="www", renamed_from=("web", "web0")).renamed_from == ("web", "web0")


# --- the graph and the offline diff ---

RENAMABLE = (
    DEMO_STACK.replace(
        '        Machine(\n            name="web",',
        '        Machine(\n            name=web,\n            renamed_from=tuple(settings.object("demo:renamedFrom", [])),',
    )
    .replace('"web", *peers', "web, *peers")
    .replace("    peers = ", '    web = settings.values.get("demo:webName", "web")\n    peers = ')
)


@pytest.fixture(scope="module")
def renamable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo(tmp_path_factory.mktemp("rename") / "project", RENAMABLE)


def plan(root: Path, *overrides: str) -> dict[str, Any]:
    return planning.make_plan(root, "dev", list(overrides)).document


def test_a_rename_with_renamed_from_keeps_the_server_and_its_install(renamable: Path) -> None:
    renamed = plan(renamable, "demo:webName=www", 'demo:renamedFrom=["web"]')
    component = next(r for r in renamed["resources"] if r["type"] == "fleet:index:Machine" and r["name"] == "www")
    assert component["options"]["aliases"] == [{"spec": {"name": "web", "parentUrn": ""}}]
    diff = diff_plans(plan(renamable), renamed)
    changes = {c["name"]: c for c in diff["machines"]["www"]["changes"]}
    server = changes["www"]
    assert server["type"] == SERVER and server["op"] == "update" and server["replace_reasons"] == []
    assert {p["path"] for p in server["paths"]} == {"name", "labels.machine"}
    assert "renamed from" in server["note"] and server["note"].count("::web ") == 1
    install = changes["www-install"]
    # kept (matched through the parent's alias), not deleted and created; its trigger is the kept
    # server's id, unchanged: an update of its command lines naming the machine, never a replace
    assert install["op"] == "update" and "web-install" in install["note"]
    assert install["replace_reasons"] == [] and install["unknown"] == []
    assert "wipe" not in diff["machines"]["www"]["danger"]
    deleted = [c for e in diff["machines"].values() for c in e["changes"] if c["op"] == "delete"]
    assert deleted == []  # the ZeroTier admission follows its alias too: no delete deauthorizing the member
    admission = changes["zt-admit-www"]  # its triggers (network and member id) are known after apply
    assert "zt-admit-web " in admission["note"] and admission["paths"] == [] and "triggers[1]" in admission["unknown"]


def test_without_renamed_from_the_server_is_deleted_and_created(renamable: Path) -> None:
    diff = diff_plans(plan(renamable), plan(renamable, "demo:webName=www"))
    ops = {(c["name"], c["op"]) for e in diff["machines"].values() for c in e["changes"] if c["type"] == SERVER}
    assert ("web", "delete") in ops and ("www", "create") in ops


# --- `fleet machine rename` ---

STACK = """
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine

def build(settings):
    token = Generator(name="token", files=(GeneratorFile(name="t"),), script='echo t0k3n > "$out/t"')
    pub = Generator(name="pub", files=(GeneratorFile(name="p", secret=False),), script='echo p > "$out/p"')
    both = Generator(name="both", share=True, files=(GeneratorFile(name="s"),), script='echo s > "$out/s"')
    return Fleet(name="demo", machines=(Machine(name="MACHINE_NAME",OLDNAMES generators=(token, pub, both)),
                                        Machine(name="db", generators=(both,))))
"""


def stack(name: str, renamed: str = "") -> str:
    return STACK.replace("MACHINE_NAME", name).replace("OLDNAMES", f' renamed_from=("{renamed}",),' if renamed else "")


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root, env = make_project(tmp_path / "fleet", stack("web"))
    out = fleet_cli(root, env, "vars", "generate")
    assert out.returncode == 0, out.stderr.decode()
    (root / "machines" / "web").mkdir(parents=True)
    (root / "machines" / "web" / "install.json").write_text('{"host_key": "SHA256:x", "layout": null}\n')
    (root / "known_hosts").write_text("192.0.2.1 ssh-ed25519 AAAAC3 fleet:web\n192.0.2.2 ssh-ed25519 AAAAD4 fleet:db\n")
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    return root, env


def tracked(repo: Path) -> set[str]:
    out = subprocess.run(["git", "-C", str(repo), "ls-files"], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_rename_moves_vars_keys_links_and_records(project: tuple[Path, dict[str, str]]) -> None:
    repo, env = project
    tree = SopsTree(repo)
    admin = [env["SOPS_AGE_KEY"]]
    machine_key = tree.machine_private_key("web", admin)
    public = tree.keys_of("machines", "web")
    out = fleet_cli(repo, env, "machine", "rename", "web", "www", "--repo", str(repo))
    assert out.returncode == 0, out.stderr.decode()
    assert 'Machine(name="www", renamed_from=("web",)' in out.stdout.decode()
    assert not (repo / "vars/per-machine/web").exists() and not (repo / "sops/machines/web").exists()
    assert tree.keys_of("machines", "www") == public
    assert tree.machine_private_key("www", admin) == machine_key  # the same age key, under the new name
    for secret in ("vars/per-machine/www/token/t", "vars/shared/both/s"):
        link = repo / secret / "machines" / "www"
        assert os.readlink(link).startswith("../") and link.resolve() == (repo / "sops/machines/www").resolve()
        assert not (repo / secret / "machines" / "web").is_symlink()
        assert sops.decrypt((repo / secret / "secret").read_bytes(), [machine_key]).strip() in (b"t0k3n", b"s")
    assert (repo / "machines/www/install.json").exists()
    assert (repo / "known_hosts").read_text().splitlines()[0] == "192.0.2.1 ssh-ed25519 AAAAC3 fleet:www"
    files = tracked(repo)
    assert "vars/per-machine/www/token/t/secret" in files and "sops/secrets/www-age.key/secret" in files
    assert not any("/web/" in f or f.endswith("/web") or "web-age" in f for f in files)
    (repo / "stacks" / "dev.py").write_text(stack("www", "web"))
    check = fleet_cli(repo, env, "vars", "check")
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_rename_refuses_naming_both_machines(project: tuple[Path, dict[str, str]]) -> None:
    repo, _ = project
    with pytest.raises(ConfigError, match=r"machine db: already has sops/machines/db.*machine web cannot be renamed"):
        rename_machine(LOCAL, repo, "web", "db")
    with pytest.raises(ConfigError, match="machine nothere: has no vars.*to move to www"):
        rename_machine(LOCAL, repo, "nothere", "www")
    assert (repo / "vars/per-machine/web").is_dir()  # nothing moved
