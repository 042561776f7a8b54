"""Generators declared in the flake, run end to end with real Nix and bubblewrap: `fleet vars generate`
realises each finalScript and runs it beside the stack's Python generators, in clan's layout; `check`,
`list`, `--no-flake`, failures that leave the store as it was, and `fleet plan`'s `declared`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.deploy.stored import DIGEST_KEY
from fleet_sdk.graph import deploy_fleet
from fleet_sdk.graph.steps import content_hash
from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.stack.settings import StackSettings, load_fleet
from fleet_sdk.testing import RecordingRunner, nix_env, recorded_graph
from fleet_sdk.testing.fakesystem import nix_system
from fleet_sdk.tools.runner import LOCAL
from fleet_sdk.vars import execute
from fleet_sdk.vars.declared import declared_fleet
from fleet_sdk.vars.generate import GenerateOptions, generate
from fleet_sdk.vars.store import GeneratorId

from .tools import require
from .vars_flake import FileSpec, GeneratorSpec, MachineSpec, PromptSpec, write_vars_flake
from .vars_project import fleet_cli, make_project, snapshot

pytestmark = pytest.mark.integration

STACK = """
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine
from fleet_sdk.vars import stock

wg = Generator(name="wg", files=(GeneratorFile(name="private"), GeneratorFile(name="public", secret=False)),
               script="echo priv > $out/private; echo pub > $out/public")

def build(settings):
    return Fleet(name="demo", machines=(
        Machine(name="web", generators=(wg, stock.openssh())),
        Machine(name="mac", machine_class="darwin"),
    ))
"""

CA = GeneratorSpec("ca", share=True, files=(FileSpec("ca", deploy=False), FileSpec("ca.pub", secret=False)))
TOKEN = GeneratorSpec("token", files=(FileSpec("t"),))  # the same finalScript on both machines
OPENSSH = GeneratorSpec("openssh", files=(FileSpec("ssh.id_ed25519"), FileSpec("ssh.id_ed25519.pub", secret=False)))
CERT = GeneratorSpec("cert", dependencies=("openssh", "ca"), files=(FileSpec("c", secret=False),))
PW = GeneratorSpec(
    "pw",
    prompts=(PromptSpec("word", type="hidden", persist=True), PromptSpec("salt")),
    files=(FileSpec("hash", secret=False, needed_for="users"),),
    validation={"rounds": 5},
)


CANNOT_BUILD = (
    f'builtins.derivation {{ name = "generator-bad"; system = "{nix_system()}"; builder = "/bin/sh"; '
    'args = [ "-c" "echo runtime input missing >&2; exit 1" ]; }'
)


def machines(*extra: GeneratorSpec) -> dict[str, MachineSpec]:
    return {
        "web": MachineSpec(generators=(OPENSSH, CA, CERT, PW, TOKEN, *extra)),
        "mac": MachineSpec("darwin", generators=(CA, TOKEN)),
    }


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def project(tmp_path: Path, *extra: GeneratorSpec) -> tuple[Path, dict[str, str]]:
    """The stack, its repository and its flake in one folder (a git work tree: the flake is tracked)."""
    require(("nix", "nix-bin"), ("bwrap", "bubblewrap"), ("git", "git"))
    root, env = make_project(tmp_path / "p", STACK)
    write_vars_flake(root, machines(*extra))
    git(root, "add", "flake.nix")
    env |= nix_env(env) | {
        "FLEET_PROMPT_PW_WORD": "correct horse",
        "FLEET_PROMPT_PW_SALT": "pepper",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    return root, env


def reflake(root: Path, *extra: GeneratorSpec) -> None:
    write_vars_flake(root, machines(*extra))
    git(root, "add", "flake.nix")


def ok(out: subprocess.CompletedProcess[bytes]) -> str:
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


def test_flake_generators_run_beside_the_python_ones_in_clan_s_layout(tmp_path: Path) -> None:
    root, env = project(tmp_path)
    missing = fleet_cli(root, env, "vars", "check")
    assert missing.returncode == 1 and b"web: cert/c: public value missing" in missing.stdout
    assert b"mac: token/t: secret missing" in missing.stdout
    public = json.loads(ok(fleet_cli(root, env, "vars", "generate", "--json")))
    assert public["web"]["wg/public"] == "pub\n"  # Python
    assert public["web"]["openssh/ssh.id_ed25519.pub"] == "openssh/ssh.id_ed25519.pub"  # the flake's, not the built-in
    assert public["web"]["cert/c"] == "cert/c openssh/ssh.id_ed25519 openssh/ssh.id_ed25519.pub ca/ca ca/ca.pub"
    assert public["web"]["pw/hash"] == "pw/hash salt=pepper"
    assert {k: v for k, v in public["mac"].items() if k != DIGEST_KEY} == {"ca/ca.pub": "ca/ca.pub"}
    tree, admin = SopsTree(root), env["SOPS_AGE_KEY"]
    key = root / "vars/per-machine/web/openssh/ssh.id_ed25519"
    assert sops.decrypt((key / "secret").read_bytes(), [tree.machine_private_key("web", [admin])]) == (
        b"openssh/ssh.id_ed25519"
    )
    assert os.readlink(key / "machines/web") == "../../../../../../sops/machines/web"
    assert os.readlink(key / "users/admin") == "../../../../../../sops/users/admin"
    assert set(sops.recipients((key / "secret").read_text())) == {
        *tree.keys_of("machines", "web"),
        *tree.keys_of("users", "admin"),
    }
    ca = root / "vars/shared/ca"
    assert sorted(p.name for p in (ca / "ca").iterdir()) == ["secret", "users"]  # deploy = false: no machines
    assert (ca / "ca.pub/value").read_bytes() == b"ca/ca.pub"
    for machine in ("web", "mac"):
        token = root / f"vars/per-machine/{machine}/token/t"
        assert sorted(p.name for p in (token / "machines").iterdir()) == [machine]
    pw = root / "vars/per-machine/web/pw"
    assert (pw / ".validation-hash").read_text() == hashlib.sha256(b'{"rounds":5}').hexdigest()
    assert sops.decrypt((pw / "word/secret").read_bytes(), [admin]) == b"correct horse"  # the persisted prompt
    assert not (root / "vars/per-machine/web/wg/private/value").exists()
    assert "A  vars/shared/ca/ca/secret" in git(root, "status", "--porcelain")
    assert ok(fleet_cli(root, env, "vars", "check")).startswith("all vars are present")
    listed = ok(fleet_cli(root, env, "vars", "list", "web")).splitlines()
    assert "cert/c: cert/c openssh/ssh.id_ed25519 openssh/ssh.id_ed25519.pub ca/ca ca/ca.pub" in listed
    assert "pw/word: ********" in listed and "wg/private: ********" in listed
    before = snapshot(root)
    again = fleet_cli(root, env, "vars", "generate")
    assert ok(again) == "every generator is up to date\n" and snapshot(root) == before


def test_each_final_script_is_realised_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, env = project(tmp_path)
    settings = StackSettings(repo=root, project=root)
    for name in ("NIX_CONFIG", "XDG_CACHE_HOME", "FLEET_PROMPT_PW_WORD", "FLEET_PROMPT_PW_SALT"):
        monkeypatch.setenv(name, env[name])
    fleet = declared_fleet(LOCAL, load_fleet(root, "dev", settings), settings).fleet
    runner = RecordingRunner(delegate=LOCAL)
    # a fresh process's memory of what it realised: tests before this one in the process realised these
    monkeypatch.setattr(execute, "_realised", {})
    result = generate(root, fleet, GenerateOptions(identities=[env["SOPS_AGE_KEY"]]), runner=runner)
    assert GeneratorId("token", "web") in result.generated and GeneratorId("token", "mac") in result.generated
    calls = [argv[2:] for argv in runner.argvs if argv[:2] == ["nix-store", "--realise"]]
    # openssh, ca, cert, pw, token (token's finalScript is one derivation for both machines), all by
    # one nix-store process before any generator runs
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0])) == 5


def test_no_flake_generates_only_the_python_declarations(tmp_path: Path) -> None:
    root, env = project(tmp_path)
    out = fleet_cli(root, env, "vars", "generate", "--no-flake")
    assert sorted(ok(out).splitlines()) == ["generated openssh (machine web)", "generated wg (machine web)"]
    assert (root / "vars/per-machine/web/openssh/ssh.id_ed25519.pub/value").read_text().startswith("ssh-ed25519 ")
    assert not (root / "vars/shared/ca").exists()
    listed = ok(fleet_cli(root, env, "vars", "list", "web", "--no-flake"))
    assert "wg/public: pub" in listed and "cert/" not in listed and "pw/" not in listed


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (
            GeneratorSpec("bad", files=(FileSpec("x"),), behaviour="fail"),
            ["generator bad (machine web): its finalScript failed with exit code 3", "fails on purpose"],
        ),
        (
            GeneratorSpec("bad", files=(FileSpec("x"), FileSpec("y")), behaviour="missing"),
            ["generator bad (machine web) did not generate a file for 'x' (it produced: y)"],
        ),
        (
            GeneratorSpec(
                "bad",
                files=(FileSpec("x"),),
                raw={"finalScript": CANNOT_BUILD},
            ),
            ["generator bad (machine web): building its finalScript /nix/store/", "failed", "runtime input missing"],
        ),
    ],
    ids=["fails", "missing-file", "does-not-build"],
)
def test_a_failing_flake_generator_leaves_the_store_as_it_was(
    tmp_path: Path, bad: GeneratorSpec, words: list[str]
) -> None:
    root, env = project(tmp_path)
    ok(fleet_cli(root, env, "vars", "generate"))
    reflake(root, bad)
    before = snapshot(root)
    out = fleet_cli(root, env, "vars", "generate")
    assert out.returncode == 1
    for word in words:
        assert word in out.stderr.decode()
    assert b"Traceback" not in out.stderr and snapshot(root) == before


def test_an_undeclared_file_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    root, env = project(tmp_path, GeneratorSpec("extra", files=(FileSpec("x", secret=False),), behaviour="undeclared"))
    out = fleet_cli(root, env, "vars", "generate")
    assert out.returncode == 1 and b"Traceback" not in out.stderr
    assert b"generator extra (machine web) wrote files it does not declare: undeclared" in out.stderr
    assert not (root / "vars/per-machine/web/extra").exists()


def test_from_flake_without_a_flake_is_an_error_and_a_terminal_is_told_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root, env = make_project(tmp_path / "p", STACK)
    out = fleet_cli(root, env, "vars", "check", "--from-flake")
    assert out.returncode == 1 and b"Traceback" not in out.stderr
    assert out.stderr.decode() == (
        f"error: --from-flake: no flake.nix in {root}; point fleet:flake (now '.') at the fleet's flake\n"
    )
    quiet = fleet_cli(root, env, "vars", "list", "web")
    assert quiet.returncode == 0 and quiet.stderr == b""  # not a terminal: no note
    from fleet_sdk.cli import main

    monkeypatch.chdir(root)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert main(["vars", "list", "web", "--project", str(root), "--stack", "dev"]) == 0
    assert capsys.readouterr().err == f"note: generators from the stack's Python only: no flake.nix in {root}\n"


def test_the_plan_says_where_each_generator_is_declared(tmp_path: Path) -> None:
    root, env = project(tmp_path)
    doc = json.loads(ok(fleet_cli(root, env, "plan", "--json")))
    declared = {m: {g["name"]: g["declared"] for g in e["generators"]} for m, e in doc["machines"].items()}
    assert declared == {
        "web": {"ca": "flake", "cert": "flake", "openssh": "flake", "pw": "flake", "token": "flake", "wg": "python"},
        "mac": {"ca": "flake", "token": "flake"},
    }
    text = ok(fleet_cli(root, env, "plan"))
    assert "  generators in the flake: ca (shared), cert, openssh, pw, token\n  generators in Python: wg\n" in text
    assert "  generators not generated yet: ca, cert, openssh, pw, token, wg\n" in text


def test_the_graph_s_vars_steps_hash_the_flake_s_declarations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, env = project(tmp_path)
    for name in ("NIX_CONFIG", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, env[name])
    settings = StackSettings(repo=root, project=root)
    fleet = load_fleet(root, "dev", settings)

    def steps(s: StackSettings) -> dict[str, list[str]]:
        graph = recorded_graph(lambda: deploy_fleet(fleet, s), stack="dev")
        return {r.name: r.inputs["triggers"] for r in graph.of_type("command:local:Command")}

    merged = declared_fleet(LOCAL, fleet, settings).fleet
    with_flake = steps(settings)
    assert with_flake == {
        m: [content_hash([g.definition() | {"name": g.name} for g in merged.generators_of(m.removesuffix("-vars"))])]
        for m in ("web-vars", "mac-vars")
    }
    # without the flake's generators mac declares none: no step; web's declarations are the Python ones
    python_only = steps(StackSettings(repo=root, project=root, values={"fleet:closureProbe": "false"}))
    assert set(python_only) == {"web-vars"} and python_only["web-vars"] != with_flake["web-vars"]
