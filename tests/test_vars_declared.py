"""Generators declared in the flake merged with the stack's Python ones (fleet_sdk.vars.declared), with
hand-made flake generators: which declaration wins, the errors naming both places, shared generators
across machines, dependencies and cycles, the built-ins marked `stock`, the CLI's modes; and how a
flake generator's finalScript is realised and run (fleet_sdk.vars.execute) with a recording runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.errors import CommandError, ConfigError, FleetError, GeneratorError, NixError, SpecError
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine, Prompt, Role, ServiceInstance
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import RecordingRunner
from fleet_sdk.tools import nix
from fleet_sdk.vars import declared as declared_mod
from fleet_sdk.vars import execute
from fleet_sdk.vars import stock as builtins
from fleet_sdk.vars.declared import declared_fleet, with_flake_generators
from fleet_sdk.vars.store import GeneratorId
from fleet_sdk.zerotier import service as zerotier

DRV = "/nix/store/" + "a" * 32 + "-generator-{}.drv"


def flake_gen(name: str, *files: GeneratorFile, drv: str | None = None, **fields: Any) -> Generator:
    return Generator(
        name=name,
        files=files or (GeneratorFile(name="key"),),
        final_script=drv or DRV.format(name),
        origin="flake",
        **fields,
    )


def py_gen(name: str, *files: GeneratorFile, **fields: Any) -> Generator:
    return Generator(name=name, files=files or (GeneratorFile(name="key"),), script="echo x > $out/key", **fields)


def by_name(fleet: Fleet, machine: str) -> dict[str, Generator]:
    return {g.name: g for g in fleet.generators_of(machine)}


def test_flake_generators_join_the_python_ones_in_a_copy() -> None:
    fleet = Fleet(name="f", machines=(Machine(name="web", generators=(py_gen("wg"),)), Machine(name="db")))
    merged = with_flake_generators(fleet, {"web": (flake_gen("ssh"),), "db": (flake_gen("token", share=True),)})
    assert {n: g.origin for n, g in by_name(merged, "web").items()} == {"ssh": "flake", "wg": "python"}
    assert by_name(merged, "db")["token"].final_script == DRV.format("token")
    assert [g.name for g in fleet.generators_of("web")] == ["wg"]  # the fleet given is unchanged
    assert with_flake_generators(merged, {"web": (flake_gen("ssh"),)}) == merged  # merging again changes nothing


def test_a_flake_generator_replaces_a_built_in_silently() -> None:
    fleet = Fleet(
        name="f",
        machines=(Machine(name="web", generators=(builtins.openssh(), builtins.state_version("25.05"))),),
    )
    ssh = flake_gen("openssh", GeneratorFile(name="ssh.id_ed25519"))  # files differ from the built-in's
    merged = with_flake_generators(fleet, {"web": (ssh,)})
    gens = merged.machine("web").generators
    assert [g.name for g in gens] == ["openssh", "state-version"]  # replaced in place, not duplicated
    assert by_name(merged, "web")["openssh"] is ssh and by_name(merged, "web")["state-version"].origin == "stock"


def test_a_flake_generator_replaces_the_zerotier_services() -> None:
    roles = {"controller": Role(machines=("ctl",)), "peer": Role(machines=("web",))}
    fleet = Fleet(
        name="f",
        machines=(Machine(name="ctl"), Machine(name="web")),
        instances=(ServiceInstance(name="zt", module="zerotier", roles=roles),),
    )
    identity = flake_gen("zerotier-identity-web", GeneratorFile(name="identity-secret"), share=True)
    merged = with_flake_generators(fleet, {"web": (identity,)})
    assert by_name(merged, "web")["zerotier-identity-web"] is identity
    assert by_name(merged, "web")["zerotier-ip-web-zt"].origin == "stock"


def test_the_same_declaration_in_python_and_the_flake_is_kept_once_as_the_flakes() -> None:
    files = (GeneratorFile(name="k"), GeneratorFile(name="k.pub", secret=False))
    fleet = Fleet(name="f", machines=(Machine(name="web", generators=(py_gen("ssh", *files, validation="v1"),)),))
    flake = flake_gen("ssh", *files, nix_validation_hash=py_gen("x", validation="v1").validation_hash)
    merged = with_flake_generators(fleet, {"web": (flake,)})
    assert list(by_name(merged, "web").values()) == [flake]


def test_a_different_declaration_in_python_is_an_error_naming_both_places() -> None:
    fleet = Fleet(name="f", machines=(Machine(name="web", generators=(py_gen("ssh", GeneratorFile(name="k")),)),))
    flake = flake_gen("ssh", GeneratorFile(name="k"), GeneratorFile(name="k.pub", secret=False))
    with pytest.raises(SpecError) as e:
        with_flake_generators(fleet, {"web": (flake,)}, program="stacks/dev.py")
    assert str(e.value) == (
        "machine 'web': generator 'ssh' is declared in Python (stacks/dev.py: Machine 'web' generators) and in "
        "the flake (nixosConfigurations.web.config.clan.core.vars.generators.ssh) with different definitions "
        "(files: k ≠ k, k.pub (public)); remove the Python declaration (the flake's is used) or make them equal"
    )


def test_a_different_declaration_of_a_role_names_the_role_and_darwin_configurations() -> None:
    role = Role(machines=("mac",), generators=(py_gen("token", prompts=(Prompt(name="p"),)),))
    fleet = Fleet(
        name="f",
        machines=(Machine(name="mac", machine_class="darwin"),),
        instances=(ServiceInstance(name="tokens", module="custom", input="self", roles={"default": role}),),
    )
    with pytest.raises(SpecError) as e:
        with_flake_generators(fleet, {"mac": (flake_gen("token"),)})
    message = str(e.value)
    assert "Python (the stack's program: instance 'tokens' role 'default' generators)" in message
    assert "darwinConfigurations.mac.config.clan.core.vars.generators.token" in message
    assert "prompts: p (line) ≠ none" in message


def test_a_shared_generator_runs_as_the_flake_declares_it_on_every_machine() -> None:
    ca_files = (GeneratorFile(name="ca", deploy=False), GeneratorFile(name="ca.pub", secret=False))
    fleet = Fleet(
        name="f",
        machines=(
            Machine(name="a"),
            Machine(name="b", generators=(builtins.openssh_ca(),)),  # a built-in, other files: yields
            Machine(name="c", generators=(py_gen("ca", *ca_files, share=True),)),  # the same: kept as the flake's
        ),
    )
    openssh_ca = flake_gen("openssh-ca", GeneratorFile(name="id_ed25519"), share=True)
    ca = flake_gen("ca", *ca_files, share=True)
    merged = with_flake_generators(fleet, {"a": (openssh_ca, ca)})
    assert by_name(merged, "b")["openssh-ca"] is openssh_ca
    assert by_name(merged, "c")["ca"] is ca


def test_a_shared_generator_declared_differently_on_another_machine_names_both_machines() -> None:
    fleet = Fleet(name="f", machines=(Machine(name="a"), Machine(name="b", generators=(py_gen("ca", share=True),))))
    with pytest.raises(SpecError) as e:
        with_flake_generators(fleet, {"a": (flake_gen("ca", GeneratorFile(name="other"), share=True),)})
    message = str(e.value)
    assert message.startswith("generator 'ca': machines 'a' in the flake (nixosConfigurations.a.config")
    assert "and 'b' in Python (the stack's program: Machine 'b' generators) declare" in message
    assert (
        "files: other ≠ key" in message and "must agree on its files, prompts, dependencies and validation" in message
    )


def test_flake_declarations_of_a_shared_generator_must_agree_too() -> None:
    fleet = Fleet(name="f", machines=(Machine(name="a"), Machine(name="b", machine_class="darwin")))
    a = flake_gen("token", share=True, drv=DRV.format("token-linux"))
    b = flake_gen("token", share=True, drv=DRV.format("token-darwin"))  # another system: another finalScript
    merged = with_flake_generators(fleet, {"a": (a,), "b": (b,)})
    assert by_name(merged, "b")["token"] is b  # equal but for how it runs: both kept
    with pytest.raises(
        SpecError, match="machines 'a' .* and 'b' in the flake .darwinConfigurations.b.*validation: none ≠ hash 0000"
    ):
        with_flake_generators(fleet, {"a": (a,), "b": (flake_gen("token", share=True, nix_validation_hash="0" * 64),)})


@pytest.mark.parametrize(
    ("gens", "words"),
    [
        (
            (flake_gen("cert", dependencies=("ca",)),),
            "machine 'web': generator 'cert' declared in the flake (nixosConfigurations.web.config.clan.core.vars"
            ".generators.cert): dependency 'ca' is no generator of this machine and no shared generator of any machine; "
            "declare it or remove the dependency",
        ),
        (
            (flake_gen("a", dependencies=("b",)), flake_gen("b", dependencies=("a",))),
            "machine 'web': generators depend on each other in a cycle: a -> b -> a",
        ),
        (
            (flake_gen("ca", share=True, dependencies=("key",)), flake_gen("key")),
            "a shared generator cannot depend on the per-machine generator 'key'",
        ),
        ((flake_gen("x"), flake_gen("x")), "machine 'web': generator 'x' is declared twice in the flake"),
        ((flake_gen("zerotier-identity-db", share=True),), "is the ZeroTier identity of 'db'"),
    ],
)
def test_declarations_that_cannot_run_are_errors_naming_machine_and_generator(
    gens: tuple[Generator, ...], words: str
) -> None:
    fleet = Fleet(name="f", machines=(Machine(name="web"), Machine(name="db")))
    with pytest.raises(SpecError) as e:
        with_flake_generators(fleet, {"web": gens})
    assert words in str(e.value)


def test_a_dependency_on_a_shared_generator_of_another_machine_is_fine() -> None:
    fleet = Fleet(name="f", machines=(Machine(name="web"), Machine(name="ca", generators=(py_gen("ca", share=True),))))
    merged = with_flake_generators(fleet, {"web": (flake_gen("cert", dependencies=("ca",)),)})
    assert by_name(merged, "web")["cert"].dependencies == ("ca",)


def test_flake_generators_of_an_unknown_machine_are_refused() -> None:
    with pytest.raises(SpecError, match="flake generators of 'ghost', which are no machines of 'f'"):
        with_flake_generators(Fleet(name="f", machines=(Machine(name="web"),)), {"ghost": (flake_gen("x"),)})


def test_the_built_ins_are_marked_stock() -> None:
    made = [
        builtins.openssh(),
        builtins.openssh_ca(),
        builtins.openssh_cert("web", ["zt"]),
        builtins.user_password("root"),
        builtins.emergency_access(),
        builtins.state_version("25.05"),
        builtins.disk_passphrase(),
        builtins.deploy_key(),
        *builtins.nixos_defaults("web", ["zt"]),
    ]
    assert {g.origin for g in made} == {"stock"}
    roles = {"controller": Role(machines=("ctl",))}
    fleet = Fleet(
        name="f",
        machines=(Machine(name="ctl"),),
        instances=(ServiceInstance(name="zt", module="zerotier", roles=roles),),
    )
    assert {g.origin for g in zerotier.generators(fleet, fleet.instances[0], "ctl")} == {"stock"}
    assert py_gen("x").origin == "python"


# ---- declared_fleet: when the flake is evaluated ----


def settings(repo: Path, **values: str) -> StackSettings:
    return StackSettings(repo=repo, project=repo, values=values)


@pytest.fixture
def evaluated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stands in for fleet_sdk.vars.flake.flake_generators: records the flakes asked."""
    asked: list[str] = []

    def fake(runner: Any, flake: str, machines: Any, *, cache_home: Path | None = None) -> dict[str, Any]:
        asked.append(flake)
        return {"web": (flake_gen("ssh"),)}

    import fleet_sdk.vars.flake

    monkeypatch.setattr(fleet_sdk.vars.flake, "flake_generators", fake)
    return asked


FLEET = Fleet(name="f", machines=(Machine(name="web", generators=(py_gen("wg"),)),))


def test_the_flake_is_evaluated_when_it_is_here_and_the_probe_is_on(tmp_path: Path, evaluated: list[str]) -> None:
    (tmp_path / "flake.nix").write_text("{ outputs = _: { }; }")
    found = declared_fleet(RecordingRunner(), FLEET, settings(tmp_path))
    assert found.from_flake and found.note is None and evaluated == [str(tmp_path)]
    assert set(by_name(found.fleet, "web")) == {"ssh", "wg"}
    assert declared_fleet(RecordingRunner(), found.fleet, settings(tmp_path)).fleet is found.fleet
    assert len(evaluated) == 1  # a merged fleet is not evaluated again


def test_without_the_flake_the_python_declarations_are_used_with_a_note(tmp_path: Path, evaluated: list[str]) -> None:
    found = declared_fleet(RecordingRunner(), FLEET, settings(tmp_path))
    assert found.fleet is FLEET and not found.from_flake
    assert found.note == f"generators from the stack's Python only: no flake.nix in {tmp_path}"
    with pytest.raises(ConfigError, match=r"--from-flake: no flake.nix in .*; point fleet:flake \(now '.'\)"):
        declared_fleet(RecordingRunner(), FLEET, settings(tmp_path), "flake")
    remote = StackSettings(repo=tmp_path, values={"fleet:flake": "github:o/r"}, flake="github:o/r")
    assert "not on this machine" in (declared_fleet(RecordingRunner(), FLEET, remote).note or "")
    assert declared_fleet(RecordingRunner(), FLEET, remote, "flake").from_flake  # Nix fetches it
    assert evaluated == ["github:o/r"]


def test_the_probe_switch_and_no_flake_leave_the_flake_alone(tmp_path: Path, evaluated: list[str]) -> None:
    (tmp_path / "flake.nix").write_text("{ outputs = _: { }; }")
    off = settings(tmp_path, **{"fleet:closureProbe": "false"})
    found = declared_fleet(RecordingRunner(), FLEET, off)
    assert found.fleet is FLEET and "fleet:closureProbe is false (--from-flake evaluates the flake)" in (
        found.note or ""
    )
    assert declared_fleet(RecordingRunner(), FLEET, settings(tmp_path), "python").fleet is FLEET
    assert evaluated == []
    assert declared_fleet(RecordingRunner(), FLEET, off, "flake").from_flake
    assert len(evaluated) == 1


# ---- running a finalScript ----


@pytest.fixture(autouse=True)
def fresh_realised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execute, "_realised", {})
    monkeypatch.setattr(declared_mod, "_merged", type(declared_mod._merged)())


def test_a_final_script_is_realised_then_run_with_bash_c_in_the_sandbox() -> None:
    drv = DRV.format("ssh")
    out = "/nix/store/" + "b" * 32 + "-generator-ssh"
    runner = RecordingRunner().reply(stdout=f"{out}\n".encode())
    with pytest.raises(GeneratorError, match="did not generate a file for 'key'"):  # the recorded run writes nothing
        execute.run_generator(GeneratorId("ssh", "web"), flake_gen("ssh"), {}, {}, sandbox=False, runner=runner)
    realise, run = runner.calls
    assert list(realise.argv) == ["nix-store", "--realise", drv] and realise.timeout == 3600
    assert list(run.argv) == ["bash", "-c", out]
    assert run.env is not None and set(run.env) == {"in", "out", "prompts", "PATH", "HOME", "LANG"}


def test_a_final_script_that_does_not_build_names_the_generator_and_nix_s_message() -> None:
    stderr = b"warning: something\nerror: builder for '/nix/store/x.drv' failed with exit code 1\n"
    runner = RecordingRunner().fail(CommandError(["nix-store"], 1, stderr))
    with pytest.raises(GeneratorError) as e:
        execute.run_generator(GeneratorId("ssh", "web"), flake_gen("ssh"), {}, {}, runner=runner)
    message = str(e.value)
    assert message.startswith(f"generator ssh (machine web): building its finalScript {DRV.format('ssh')} failed")
    assert "not in this machine's Nix store" in message and "nothing of it was stored" in message
    assert message.endswith("builder for '/nix/store/x.drv' failed with exit code 1")
    assert "warning" not in message


def test_realise_wants_one_store_path_and_a_build_s_tail_keeps_the_builder_s_log() -> None:
    runner = RecordingRunner().reply(stdout=b"/nix/store/x-a\n/nix/store/x-b\n")
    with pytest.raises(NixError, match="nix-store printed 2 store paths, not one"):
        nix.realise(runner, DRV.format("two"))
    with pytest.raises(FleetError, match="is not a store derivation"):
        nix.realise_argv("/tmp/x.drv")
    stderr = (
        "warning: ignoring the user-specified setting 'x'\n"
        "these 2 derivations will be built:\n  /nix/store/a-dep.drv\n  /nix/store/b-gen.drv\n"
        "building '/nix/store/b-gen.drv'...\nruntime input missing\n"
        "error: builder for '/nix/store/b-gen.drv' failed with exit code 1\n"
    )
    assert nix.build_error_tail(stderr) == (
        "runtime input missing\nerror: builder for '/nix/store/b-gen.drv' failed with exit code 1"
    )
