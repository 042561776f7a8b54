"""Generators declared in the flake (fleet_sdk.vars.flake): every machine's clan.core.vars.generators
from one `nix eval`, cached by the flake's source fingerprint. The integration tests run the real nix
on tests/vars_flake.py's flakes and count the processes with a RecordingRunner delegating to LOCAL; the
others script the runner."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from fleet_sdk.errors import CommandError, NixError, SpecError
from fleet_sdk.testing import RecordingRunner, nix_env
from fleet_sdk.tools.runner import LOCAL
from fleet_sdk.vars import flake
from fleet_sdk.vars.flake import flake_generators
from fleet_sdk.vars.flake_model import to_generator

from .tools import require
from .vars_flake import (
    FileSpec,
    GeneratorSpec,
    MachineSpec,
    PromptSpec,
    expected_generator,
    final_script_text,
    final_scripts,
    touch_unrelated,
    validation_hash,
    write_vars_flake,
)

DRV = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-generator-ssh.drv"

# A shared generator on all three machines, a dependency on it, prompts of every kind, a validation
# value, a file needed for partitioning and one not deployed.
NETWORK = GeneratorSpec("network", share=True, files=(FileSpec("id"), FileSpec("name", secret=False)))
CERT = GeneratorSpec(
    "cert",
    dependencies=("network",),
    files=(FileSpec("key", owner="nginx", group="nginx", mode="0440"), FileSpec("ca", secret=False, deploy=False)),
    validation={"name": "web1", "domains": {"zt": "zt"}},
)
DISK = GeneratorSpec(
    "disk",
    files=(FileSpec("luks", needed_for="partitioning"),),
    prompts=(
        PromptSpec("passphrase", "hidden", persist=True, description="LUKS passphrase"),
        PromptSpec("notes", "multiline"),
        PromptSpec("recovery", "multiline-hidden"),
        PromptSpec("label"),
    ),
)
FLEET = {
    "web1": MachineSpec(generators=(NETWORK, CERT, DISK)),
    "web2": MachineSpec(generators=(NETWORK,)),
    "mac": MachineSpec("darwin", generators=(NETWORK, GeneratorSpec("token", files=(FileSpec("t"),)))),
    "plain": MachineSpec(clan_vars=False),
}
CLASSES = {m: s.machine_class for m, s in FLEET.items()}


def nix_calls(runner: RecordingRunner) -> list[list[str]]:
    return [argv for argv in runner.argvs if argv[0] == "nix"]


@pytest.fixture
def nix_config(monkeypatch: pytest.MonkeyPatch) -> None:
    require(("nix", "nix-bin"))
    monkeypatch.setenv("NIX_CONFIG", nix_env()["NIX_CONFIG"])


def expected(ref: str, fleet: dict[str, MachineSpec]) -> dict:
    drvs = final_scripts(ref)
    return {
        m: tuple(
            expected_generator(g, drvs[m, g.name], spec.machine_class)
            for g in sorted(spec.generators, key=lambda g: g.name)
        )
        for m, spec in fleet.items()
    }


# ---- the real nix ----


@pytest.mark.integration
@pytest.mark.usefixtures("nix_config")
def test_every_field_of_every_machine_from_one_nix_process_then_none(tmp_path: Path) -> None:
    ref = write_vars_flake(tmp_path / "flake", FLEET)
    runner = RecordingRunner(delegate=LOCAL)
    found = flake_generators(runner, ref, {**CLASSES, "ghost": "nixos"}, cache_home=tmp_path / "cache")
    assert len(runner.calls) == 1 and len(nix_calls(runner)) == 1  # a path flake: no git either
    assert found == {**expected(ref, FLEET), "ghost": ()}
    web1 = {g.name: g for g in found["web1"]}
    assert [f.name for f in web1["disk"].files] == ["luks", "passphrase"]  # the persisted prompt's file
    assert web1["disk"].files[0].needed_for == "partitioning"
    assert [(p.name, p.type, p.persist, p.description) for p in web1["disk"].prompts] == [
        ("label", "line", False, "label"),
        ("notes", "multiline", False, "notes"),
        ("passphrase", "hidden", True, "LUKS passphrase"),
        ("recovery", "multiline-hidden", False, "recovery"),
    ]
    ca, key = web1["cert"].files
    assert (ca.secret, ca.deploy) == (False, False) and (key.owner, key.group, key.mode) == ("nginx", "nginx", "0440")
    assert web1["cert"].dependencies == ("network",) and web1["cert"].final_script.endswith("-generator-cert.drv")
    assert web1["cert"].validation_hash == validation_hash(CERT.validation)
    assert web1["network"].validation_hash is None and web1["network"].share
    assert {g.origin for gs in found.values() for g in gs} == {"flake"}
    # the shared generator: one definition on every machine, the darwin files' group as clan's
    network = [next(g for g in found[m] if g.name == "network") for m in ("web1", "web2", "mac")]
    assert len({json.dumps(g.definition()) for g in network}) == 1 and network[2].files[0].group == "wheel"
    again = RecordingRunner(delegate=LOCAL)
    assert flake_generators(again, ref, {**CLASSES, "ghost": "nixos"}, cache_home=tmp_path / "cache") == found
    assert again.calls == []
    [cache] = (tmp_path / "cache" / "fleet" / "generators").glob("*.json")
    assert json.loads(cache.read_text())["machines"]["mac"]["class"] == "darwin"


@pytest.mark.integration
@pytest.mark.usefixtures("nix_config")
def test_the_final_script_is_clans(tmp_path: Path) -> None:
    ref = write_vars_flake(tmp_path / "flake", {"web1": FLEET["web1"]})
    [disk] = [
        g for g in flake_generators(LOCAL, ref, {"web1": "nixos"}, cache_home=tmp_path)["web1"] if g.name == "disk"
    ]
    assert disk.final_script is not None
    done = subprocess.run(
        ["nix-store", "--realise", disk.final_script], env=nix_env(), capture_output=True, text=True, check=True
    )
    script = Path(done.stdout.strip())
    assert script.read_text() == final_script_text(DISK) and script.stat().st_mode & 0o111
    assert script.read_text().startswith(
        '#!/bin/bash\nset -euo pipefail\n\nPATH=/usr/bin:/bin\ncat "$prompts/passphrase"'
    )


@pytest.mark.integration
@pytest.mark.usefixtures("nix_config")
def test_a_path_flake_is_keyed_on_every_file_and_a_new_validation_is_seen(tmp_path: Path) -> None:
    ref = write_vars_flake(tmp_path / "flake", FLEET)

    def evaluate() -> tuple[dict, RecordingRunner]:
        runner = RecordingRunner(delegate=LOCAL)
        return flake_generators(runner, ref, CLASSES, cache_home=tmp_path / "cache"), runner

    first, _ = evaluate()
    touch_unrelated(tmp_path / "flake")  # nix copies every file of a path: flake, so its source changed
    same, runner = evaluate()
    assert same == first and len(nix_calls(runner)) == 1
    _, runner = evaluate()
    assert runner.calls == []
    changed = {**FLEET, "web1": MachineSpec(generators=(NETWORK, replace(CERT, validation=2), DISK))}
    write_vars_flake(tmp_path / "flake", changed)
    after, runner = evaluate()
    assert len(nix_calls(runner)) == 1
    cert = {g.name: g for g in after["web1"]}["cert"]
    assert cert.validation_hash == validation_hash(2) != validation_hash(CERT.validation)
    assert {m: gs for m, gs in after.items() if m != "web1"} == {m: gs for m, gs in first.items() if m != "web1"}


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True)


@pytest.mark.integration
@pytest.mark.usefixtures("nix_config")
def test_a_git_flake_is_keyed_on_tracked_files_and_head(tmp_path: Path) -> None:
    require(("git", "git"))
    folder = tmp_path / "flake"
    write_vars_flake(folder, FLEET)
    touch_unrelated(folder, "tracked\n")
    git(folder, "init", "-q")
    git(folder, "add", ".")
    git(folder, "commit", "-qm", "fleet")

    def evaluate() -> tuple[dict, RecordingRunner]:
        runner = RecordingRunner(delegate=LOCAL)
        return flake_generators(runner, str(folder), CLASSES, cache_home=tmp_path / "unused"), runner

    first, runner = evaluate()
    assert len(nix_calls(runner)) == 1 and len(runner.calls) == 3  # rev-parse, ls-files, nix
    assert list((folder / ".git" / "fleet" / "generators").glob("*.json"))
    assert not (tmp_path / "unused").exists()
    (folder / "untracked.txt").write_text("nix does not see it\n")
    same, runner = evaluate()
    assert same == first and nix_calls(runner) == []
    touch_unrelated(folder, "a tracked file changed: nix copies it, so the source changed\n")
    same, runner = evaluate()
    assert same == first and len(nix_calls(runner)) == 1
    # the flake as the fleet repository: what a generate writes (vars/, sops/, tracked) changes no
    # generator's declaration, so it keeps the cache warm; the closure probe's key still sees it
    for stored in ("vars/shared/x/f/secret", "sops/machines/web1/key.json"):
        (folder / stored).parent.mkdir(parents=True, exist_ok=True)
        (folder / stored).write_text("stored by a generate\n")
        git(folder, "add", stored)
        same, runner = evaluate()
        assert same == first and nix_calls(runner) == [], stored
    git(folder, "commit", "-qam", "notes")  # same files, a new HEAD (nix's self.rev)
    _, runner = evaluate()
    assert len(nix_calls(runner)) == 1
    write_vars_flake(
        folder,
        {
            **FLEET,
            "web2": MachineSpec(generators=(NETWORK, GeneratorSpec("x", files=(FileSpec("f"),), validation="v"))),
        },
    )
    after, runner = evaluate()
    assert len(nix_calls(runner)) == 1 and [g.validation_hash for g in after["web2"]] == [None, validation_hash("v")]


@pytest.mark.integration
@pytest.mark.usefixtures("nix_config")
def test_configurations_without_clan_vars_declare_nothing(tmp_path: Path) -> None:
    ref = write_vars_flake(tmp_path / "flake", {"plain": MachineSpec(clan_vars=False), "mac": MachineSpec("darwin")})
    runner = RecordingRunner(delegate=LOCAL)
    machines = {"plain": "nixos", "mac": "darwin", "gone": "darwin", "plain-as-darwin": "darwin"}
    assert flake_generators(runner, ref, machines, cache_home=tmp_path) == dict.fromkeys(machines, ())  # type: ignore[arg-type]
    assert len(runner.calls) == 1
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "flake.nix").write_text("{ outputs = _: { }; }\n")  # no configurations at all
    assert flake_generators(LOCAL, f"path:{tmp_path / 'other'}", {"web": "nixos"}, cache_home=tmp_path) == {"web": ()}


BROKEN = GeneratorSpec("broken", files=(FileSpec("f"),), raw={"finalScript": 'throw "jq is not in runtimeInputs"'})
OK = GeneratorSpec("ok", files=(FileSpec("f"),))


@pytest.mark.integration
@pytest.mark.usefixtures("nix_config")
def test_a_generator_that_throws_is_named_with_nix_s_message(tmp_path: Path) -> None:
    fleet = {
        "web1": MachineSpec(generators=(OK, BROKEN)),
        "web2": MachineSpec(generators=(OK,)),
        "db": MachineSpec(raw='throw "a module of db is broken"'),
    }
    ref = write_vars_flake(tmp_path / "flake", fleet)
    runner = RecordingRunner(delegate=LOCAL)
    with pytest.raises(NixError) as info:
        flake_generators(runner, ref, dict.fromkeys(fleet, "nixos"), cache_home=tmp_path)  # type: ignore[arg-type]
    assert str(info.value).startswith(
        "machine web1: generator 'broken' does not evaluate:\n  jq is not in runtimeInputs\n"
        "machine db: its vars generators do not evaluate:\n  a module of db is broken\n"
        f"fix the configuration in the flake {ref}; "
    )
    assert len(nix_calls(runner)) == 3  # all under tryEval, then each that threw alone
    quiet = RecordingRunner(delegate=LOCAL)  # what did evaluate is cached
    assert [g.name for g in flake_generators(quiet, ref, {"web2": "nixos"}, cache_home=tmp_path)["web2"]] == ["ok"]
    assert quiet.calls == []


@pytest.mark.integration
@pytest.mark.usefixtures("nix_config")
def test_an_error_tryeval_cannot_catch_names_the_machine(tmp_path: Path) -> None:
    bad = GeneratorSpec("bad", files=(FileSpec("f"),), raw={"files": '1 + "a"'})
    fleet = {"web1": MachineSpec(generators=(OK, bad)), "web2": MachineSpec(generators=(OK,))}
    ref = write_vars_flake(tmp_path / "flake", fleet)
    runner = RecordingRunner(delegate=LOCAL)
    with pytest.raises(NixError) as info:
        flake_generators(runner, ref, {"web1": "nixos", "web2": "nixos"}, cache_home=tmp_path)
    assert str(info.value).startswith(
        "machine web1: its vars generators do not evaluate:\n  cannot add a string to an integer\n"
    )
    assert "flake.nix:" in str(info.value)  # Nix's location of the error
    assert len(nix_calls(runner)) == 3  # all, then each machine alone


@pytest.mark.integration
@pytest.mark.usefixtures("nix_config")
def test_a_declaration_fleet_sdk_refuses_names_machine_and_generator(tmp_path: Path) -> None:
    odd = GeneratorSpec("odd", files=(FileSpec("k", mode="400"),))
    ref = write_vars_flake(tmp_path / "flake", {"web": MachineSpec(generators=(OK, odd))})
    with pytest.raises(SpecError) as info:
        flake_generators(LOCAL, ref, {"web": "nixos"}, cache_home=tmp_path)
    assert str(info.value) == "machine web: generator 'odd': files.k.mode: '400' is not four octal digits like 0400"


# ---- the translation and the cache, without nix ----

FIELDS = {
    "share": False,
    "dependencies": [],
    "files": {
        "k": {"secret": True, "deploy": True, "neededFor": "services", "owner": "root", "group": "root", "mode": "0400"}
    },
    "prompts": {},
    "validationHash": None,
    "finalScript": DRV,
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"finalScript": None}, "finalScript: not a derivation"),
        ({"share": "yes"}, "share: 'yes' is not a boolean"),
        ({"dependencies": {"a": 1}}, "dependencies: {'a': 1} is not a list of generator names"),
        (
            {"files": {"k": {**FIELDS["files"]["k"], "neededFor": "boot"}}},
            "files.k.neededFor: 'boot' is not one of partitioning, activation, users, services",
        ),  # type: ignore[index]
        ({"files": {"k": {**FIELDS["files"]["k"], "deploy": None}}}, "files.k.deploy: None is not a bool"),  # type: ignore[index]
        (
            {"prompts": {"p": {"type": "secret", "persist": False, "description": None}}},
            "prompts.p.type: 'secret' is not one of line, hidden",
        ),
        ({"files": {}}, "files: declare at least one file"),
        ({"validationHash": "ABC"}, "nix_validation_hash: not a lower-case hex sha256"),
        ({"files": {"k": {**FIELDS["files"]["k"], "owner": "Root User"}}}, "files.k.owner: 'Root User' is not a user"),  # type: ignore[index]
    ],
)
def test_what_fleet_sdk_refuses_names_machine_generator_and_field(change: dict, problem: str) -> None:
    with pytest.raises(SpecError) as info:
        to_generator("web", "ssh", {**FIELDS, **change})
    assert str(info.value).startswith(f"machine web: generator 'ssh': {problem}")


def scripted(tmp_path: Path, runner: RecordingRunner, ref: str | None = None) -> dict:
    folder = tmp_path / "flake"
    if not folder.exists():
        folder.mkdir()
        (folder / "flake.nix").write_text("{ outputs = _: { }; }\n")
    return flake_generators(runner, ref or f"path:{folder}", {"web": "nixos"}, cache_home=tmp_path / "cache")


def reply(drv: str = DRV) -> bytes:
    return json.dumps(
        {"web": {"ok": True, "value": {"ssh": {"ok": True, "value": {**FIELDS, "finalScript": drv}}}}}
    ).encode()


def test_a_collected_derivation_is_evaluated_again(tmp_path: Path) -> None:
    runner = RecordingRunner().reply(stdout=reply(DRV)).reply(stdout=reply(DRV))
    scripted(tmp_path, runner)
    [argv] = runner.argvs
    assert '"web" = { class = "nixos"; only = null; };' in argv[argv.index("--apply") + 1]
    scripted(tmp_path, runner)  # DRV is not in this machine's store
    assert len(runner.calls) == 2 and runner.pending == 0


def test_without_nix_or_on_a_timeout_a_nix_error(tmp_path: Path) -> None:
    with pytest.raises(NixError, match="reading the vars generators of web in the flake path:.*: nix is not installed"):
        scripted(tmp_path, RecordingRunner().fail(CommandError(["nix"], 127, b"")))
    with pytest.raises(NixError, match="timed out after 1800 s"):
        scripted(tmp_path, RecordingRunner().fail(CommandError(["nix"], None, b"")))


def test_a_flake_not_here_is_evaluated_without_a_cache(tmp_path: Path) -> None:
    runner = RecordingRunner().reply(stdout=reply()).reply(stdout=reply())
    for _ in range(2):
        [ssh] = scripted(tmp_path, runner, "github:example/fleet")["web"]
        assert ssh.final_script == DRV
    assert (
        len(runner.calls) == 2
        and runner.argvs[0][runner.argvs[0].index("--override-input") + 2] == "github:example/fleet"
    )
    assert not (tmp_path / "cache").exists()


def test_an_unreadable_or_other_cache_is_an_empty_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flake, "_drvs_present", lambda raw: True)  # DRV stands for a .drv in the store
    scripted(tmp_path, RecordingRunner().reply(stdout=reply()))
    [cache] = (tmp_path / "cache" / "fleet" / "generators").glob("*.json")
    assert scripted(tmp_path, RecordingRunner())["web"][0].final_script == DRV  # no reply needed
    doc = json.loads(cache.read_text())
    cache.write_text(json.dumps({**doc, "format": "older"}))
    runner = RecordingRunner().reply(stdout=reply())
    scripted(tmp_path, runner)
    assert len(runner.calls) == 1
    cache.write_text("{not json")
    runner = RecordingRunner().reply(stdout=reply())
    scripted(tmp_path, runner)
    assert len(runner.calls) == 1 and json.loads(cache.read_text())["machines"]["web"]["class"] == "nixos"
