"""Acceptance of "vars declared in the flake": `fleet vars generate` runs the generators clan's NixOS and
darwin modules declare, so `pulumi up` replaces `clan vars generate`. End to end with the CLI, real Nix,
bubblewrap, age and git.

The flake (tests/vars_flake.py, a git work tree of its own, the stack's `fleet:flake`) has two NixOS
machines and a darwin one, a shared generator deployed to all three and a shared one that is not
deployed, a dependency across generators (web's and db's `cert` on their `host-key` and the shared
`ca`), prompts (hidden and persisted, multiline), a validation value, a `neededFor = partitioning`
file and a `deploy = false` file. The stack declares the three machines and no generator. `nix` and
`nix-store` are wrappers on PATH that log their arguments, to count evaluations and realisations.
One project is generated once for the module; tests that change things work on a copy of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.testing import nix_env

from .tools import require
from .vars_flake import (
    BANNER,
    CA,
    CERT,
    DISK,
    HOST_KEY,
    LOGIN,
    MESH,
    PASSWORD,
    SEED,
    FileSpec,
    GeneratorSpec,
    MachineSpec,
    fleet_machines,
    touch_unrelated,
    write_vars_flake,
)
from .vars_project import fleet_cli, make_project, snapshot

pytestmark = pytest.mark.integration

STACK = """
from fleet_sdk.spec import Fleet, Machine

def build(settings):
    return Fleet(name="demo", machines=(
        Machine(name="web"), Machine(name="db"), Machine(name="mac", machine_class="darwin")))
"""


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True)
    return done.stdout


def write_flake(folder: Path, machines: dict[str, MachineSpec]) -> None:
    """The flake as a git work tree with flake.nix tracked (Nix reads the tracked files only)."""
    write_vars_flake(folder, machines)
    if not (folder / ".git").exists():
        git(folder.parent, "init", "-q", str(folder))
        git(folder, "add", "flake.nix")
        git(folder, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "flake")
    git(folder, "add", "flake.nix")


def wrappers(folder: Path) -> Path:
    """`nix` and `nix-store` that append their arguments to $FLEET_TEST_NIX_LOG, then run the real ones."""
    folder.mkdir()
    for tool in ("nix", "nix-store"):
        real = shutil.which(tool)
        assert real is not None
        wrapper = folder / tool
        wrapper.write_text(f'#!/bin/sh\necho "{tool} $*" >> "$FLEET_TEST_NIX_LOG"\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
    return folder


@dataclass
class Project:
    root: Path  # the stack and its fleet repository
    flake: Path
    env: dict[str, str]
    log: Path

    def run(self, *args: str, password: bool = True) -> subprocess.CompletedProcess[bytes]:
        """`fleet vars …`, with the prompts' values (the banner from a file, the password from the
        environment unless `password` is False); the nix log starts empty."""
        self.log.write_text("")
        env = dict(self.env)
        if not password:
            env.pop("FLEET_PROMPT_LOGIN_PASSWORD")
        extra = ["--prompts-file", str(self.prompts)] if args[0] == "generate" else []
        return fleet_cli(self.root, env, "vars", *args, *extra)

    @property
    def prompts(self) -> Path:
        return self.root.parent / "prompts.json"

    def calls(self, what: str) -> list[str]:
        """The logged nix calls: "eval" (evaluations) or "realise" (nix-store --realise)."""
        wanted = ("nix ", " eval ") if what == "eval" else ("nix-store ", " --realise ")
        return [line for line in self.log.read_text().splitlines() if line.startswith(wanted[0]) and wanted[1] in line]

    def reflake(self, **changed: tuple[GeneratorSpec, ...]) -> None:
        write_flake(self.flake, fleet_machines(**changed))


def new_project(base: Path, bin_dir: Path) -> Project:
    flake = base / "flake"
    write_flake(flake, fleet_machines())
    root, env = make_project(base / "p", STACK)
    (root / "Pulumi.dev.yaml").write_text(f"config:\n  fleet:flake: {flake}\n")
    log = base / "nix.log"
    env |= nix_env(env) | {
        "PATH": f"{bin_dir}:{env['PATH']}",
        "FLEET_TEST_NIX_LOG": str(log),
        "XDG_CACHE_HOME": str(base / "cache"),
        "FLEET_PROMPT_LOGIN_PASSWORD": PASSWORD,
    }
    (base / "prompts.json").write_text(json.dumps({"login": {"banner": BANNER}}))
    return Project(root, flake, env, log)


@dataclass
class Generated:
    project: Project
    first: subprocess.CompletedProcess[bytes]
    evaluations: int
    realise_calls: int  # nix-store --realise processes
    realised: int  # derivations they realised


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The project after its first `fleet vars generate`."""
    require(("nix", "nix-bin"), ("bwrap", "bubblewrap"), ("git", "git"))
    base = tmp_path_factory.mktemp("accept")
    project = new_project(base, wrappers(base / "bin"))
    first = project.run("generate")
    assert first.returncode == 0, first.stderr.decode()
    realised = [line.split()[2:] for line in project.calls("realise")]
    return Generated(project, first, len(project.calls("eval")), len(realised), sum(map(len, realised)))


@pytest.fixture
def copy(generated: Generated, tmp_path: Path) -> Project:
    """A copy of the generated project and its flake, to change."""
    p = generated.project
    for name in ("p", "flake"):
        shutil.copytree(p.root.parent / name, tmp_path / name, symlinks=True)
    shutil.copy(p.prompts, tmp_path / "prompts.json")
    flake = tmp_path / "flake"
    (tmp_path / "p" / "Pulumi.dev.yaml").write_text(f"config:\n  fleet:flake: {flake}\n")
    log = tmp_path / "nix.log"
    env = p.env | {"FLEET_TEST_NIX_LOG": str(log), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return Project(tmp_path / "p", flake, env, log)


def changed(before: dict[str, bytes | str], after: dict[str, bytes | str]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def members(folder: Path, kind: str) -> list[str]:
    return sorted(p.name for p in (folder / kind).iterdir()) if (folder / kind).is_dir() else []


# ---- the first run: clan's layout ----


def test_the_first_run_writes_clan_s_layout_from_one_evaluation(generated: Generated) -> None:
    root, env = generated.project.root, generated.project.env
    assert sorted(generated.first.stdout.decode().splitlines()) == sorted(
        [
            "generated ca (shared)",
            "generated mesh (shared)",
            *(f"generated host-key (machine {m})" for m in ("web", "db", "mac")),
            *(f"generated cert (machine {m})" for m in ("web", "db")),
            *(f"generated {g} (machine web)" for g in ("login", "disk", "seed")),
        ]
    )
    # one evaluation for the three machines; each finalScript realised once (host-key and cert have
    # the same script on every machine, ca and mesh are shared: 7 derivations for 12 generators)
    assert generated.evaluations == 1 and generated.realised == 7
    assert generated.realise_calls == 1  # all of them by one nix-store process, before any generator runs
    assert PASSWORD.encode() not in generated.first.stdout + generated.first.stderr
    tree, admin = SopsTree(root), env["SOPS_AGE_KEY"]
    keys = {m: tree.keys_of("machines", m) for m in ("web", "db", "mac")} | {"admin": tree.keys_of("users", "admin")}

    def secret(rel: str, machines: list[str], plain: bytes) -> None:
        """A secret in clan's layout: its member links, its recipients, its plaintext."""
        folder = root / "vars" / rel
        depth = "../" * (len(Path(rel).parts) + 2)
        assert members(folder, "users") == ["admin"] and members(folder, "machines") == sorted(machines), rel
        assert os.readlink(folder / "users/admin") == f"{depth}sops/users/admin"
        for m in machines:
            assert os.readlink(folder / "machines" / m) == f"{depth}sops/machines/{m}"
        document = (folder / "secret").read_text()
        assert set(sops.recipients(document)) == {k for who in ["admin", *machines] for k in keys[who]}, rel
        assert sops.decrypt(document.encode(), [admin]) == plain, rel
        for m in machines:  # the machine opens it with its own age key, as sops-nix does
            assert sops.decrypt(document.encode(), [tree.machine_private_key(m, [admin])]) == plain

    def public(rel: str) -> bytes:
        return (root / "vars" / rel / "value").read_bytes()

    secret("shared/mesh/psk", ["db", "mac", "web"], b"mesh/psk")  # shared and deployed: every machine
    secret("shared/ca/ca", [], b"ca/ca")  # deploy = false: the admin only
    assert public("shared/ca/ca.pub") == b"ca/ca.pub"
    for m in ("web", "db", "mac"):
        secret(f"per-machine/{m}/host-key/key", [m], b"host-key/key")
        host_key = root / f"vars/per-machine/{m}/host-key"
        assert (host_key / ".validation-hash").read_text() == hashlib.sha256(b'{"rev":1}').hexdigest()
        assert (root / f"sops/machines/{m}/key.json").is_file()
        assert (root / f"sops/secrets/{m}-age.key/secret").is_file()
    for m in ("web", "db"):  # $in/host-key/* and $in/ca/* of the machine's own host-key and the shared ca
        assert public(f"per-machine/{m}/cert/cert") == b"cert/cert host-key/key host-key/key.pub ca/ca ca/ca.pub"
        assert not (root / f"vars/per-machine/{m}/cert/.validation-hash").exists()
    assert not (root / "vars/per-machine/mac/cert").exists()
    secret("per-machine/web/login/password", ["web"], PASSWORD.encode())  # the persisted prompt
    assert public("per-machine/web/login/motd") == f"login/motd banner={BANNER}".encode()
    secret("per-machine/web/disk/luks", ["web"], b"disk/luks")  # neededFor = partitioning
    secret("per-machine/web/seed/seed", [], b"seed/seed")  # deploy = false
    assert public("per-machine/web/seed/fingerprint") == b"seed/fingerprint"
    status = git(root, "status", "--porcelain")
    assert "A  vars/shared/mesh/psk/secret" in status and "A  sops/machines/mac/key.json" in status
    untracked = [line[3:] for line in status.splitlines() if line.startswith("?? ")]
    assert not [path for path in untracked if path.startswith(("vars", "sops"))], status


def test_check_and_list_see_the_flake_s_generators(generated: Generated) -> None:
    project = generated.project
    check = project.run("check")
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    listed = project.run("list", "web").stdout.decode().splitlines()
    assert "login/password: ********" in listed and "seed/fingerprint: seed/fingerprint" in listed
    assert project.calls("eval") == []  # both from the evaluation cache


# ---- later runs ----


def test_a_second_run_changes_nothing_and_evaluates_nothing(copy: Project) -> None:
    before = snapshot(copy.root)
    # the copy's flake is another folder: evaluated once, then cached
    first = copy.run("generate")
    assert first.stdout == b"every generator is up to date\n", first.stderr.decode()
    assert snapshot(copy.root) == before and len(copy.calls("eval")) == 1 and copy.calls("realise") == []
    again = copy.run("generate", password=False)
    assert again.stdout == b"every generator is up to date\n", again.stderr.decode()
    assert snapshot(copy.root) == before and copy.log.read_text() == ""  # no nix process at all
    touch_unrelated(copy.flake)  # a file Nix does not see (not tracked): the same source
    out = copy.run("generate")
    assert out.stdout == b"every generator is up to date\n" and copy.calls("eval") == []
    git(copy.flake, "add", "notes.txt")  # now Nix sees it: evaluated again, nothing to generate
    out = copy.run("generate")
    assert out.stdout == b"every generator is up to date\n" and len(copy.calls("eval")) == 1
    assert snapshot(copy.root) == before


def test_a_new_validation_regenerates_the_generator_and_its_dependents_only(copy: Project) -> None:
    before = snapshot(copy.root)
    host_key = replace(HOST_KEY, validation={"rev": 2})
    copy.reflake(web=(CA, MESH, host_key, CERT, LOGIN, DISK, SEED))
    out = copy.run("generate", password=False)  # the persisted password is not asked again
    assert out.returncode == 0, out.stderr.decode()
    assert sorted(out.stdout.decode().splitlines()) == [
        "generated cert (machine web)",
        "generated host-key (machine web)",
    ]
    assert len(copy.calls("eval")) == 1
    after = snapshot(copy.root)
    diff = changed(before, after)
    assert diff and all(k.startswith(("vars/per-machine/web/host-key/", "vars/per-machine/web/cert/")) for k in diff)
    assert "vars/per-machine/web/host-key/.validation-hash" in diff
    assert "vars/per-machine/web/host-key/key/secret" in diff  # re-encrypted: a new run, a new data key
    assert after["vars/per-machine/web/host-key/.validation-hash"] == hashlib.sha256(b'{"rev":2}').hexdigest().encode()
    # asked for again by name, the login generator reuses the persisted password
    out = copy.run("generate", "web", "-g", "login", password=False)
    assert out.stdout == b"generated login (machine web)\n", out.stderr.decode()
    password = (copy.root / "vars/per-machine/web/login/password/secret").read_bytes()
    assert sops.decrypt(password, [copy.env["SOPS_AGE_KEY"]]) == PASSWORD.encode()


# ---- failures leave the store as it was ----


def test_a_failing_generator_leaves_the_store_unchanged_and_is_named(copy: Project) -> None:
    before = snapshot(copy.root)
    db = (CA, MESH, HOST_KEY, CERT)
    cases = [
        ("fail", ["generator broken (machine db): its finalScript failed with exit code 3", "fails on purpose"]),
        ("missing", ["generator broken (machine db) did not generate a file for 'a' (it produced: b)"]),
        ("undeclared", ["generator broken (machine db) wrote files it does not declare: undeclared"]),
    ]
    for behaviour, words in cases:
        broken = GeneratorSpec("broken", files=(FileSpec("a"), FileSpec("b", secret=False)), behaviour=behaviour)
        copy.reflake(db=(*db, broken))
        out = copy.run("generate")
        assert out.returncode == 1, behaviour
        for word in words:
            assert word in out.stderr.decode(), out.stderr.decode()
        assert b"Traceback" not in out.stderr and snapshot(copy.root) == before, behaviour


# ---- declarations refused, naming the machine and the generator ----


def _cycle() -> tuple[GeneratorSpec, ...]:
    return (
        GeneratorSpec("left", dependencies=("right",), files=(FileSpec("l"),)),
        GeneratorSpec("right", dependencies=("left",), files=(FileSpec("r"),)),
    )


BAD = {
    "unknown-dependency": (
        {"db": (CA, MESH, HOST_KEY, replace(CERT, dependencies=("host-key", "ca", "nope")))},
        ["machine 'db': generator 'cert'", "dependency 'nope' is no generator of this machine and no shared generator"],
    ),
    "cycle": (
        {"db": (CA, MESH, HOST_KEY, CERT, *_cycle())},
        ["machine 'db': generators depend on each other in a cycle: left -> right -> left"],
    ),
    "shared-disagreement": (
        {"mac": (replace(CA, files=(FileSpec("ca", deploy=False), FileSpec("ca.pub"))), MESH, HOST_KEY)},
        ["generator 'ca': machines 'web'", "and 'mac'", "declare this shared generator differently"],
    ),
    "mode": (
        {"db": (CA, MESH, HOST_KEY, replace(CERT, files=(FileSpec("cert", secret=False, mode="644"),)))},
        ["machine db: generator 'cert': files.cert.mode: '644' is not four octal digits like 0400"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_declaration_is_refused_naming_machine_and_generator(copy: Project, case: str) -> None:
    machines, words = BAD[case]
    before = snapshot(copy.root)
    copy.reflake(**machines)
    out = copy.run("generate")
    message = out.stderr.decode()
    assert out.returncode == 1 and message.startswith("error: "), message
    for word in words:
        assert word in message, message
    assert "Traceback" not in message and snapshot(copy.root) == before
