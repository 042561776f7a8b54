"""Spec validation: good fleets build, bad ones are refused naming the machine and the field."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from fleet_sdk.errors import SpecError
from fleet_sdk.spec import (
    Fleet,
    GcpHost,
    Generator,
    GeneratorFile,
    HetznerHost,
    Machine,
    Prompt,
    Role,
    ServiceInstance,
    effective_tags,
)

from .conftest import PROJECT


def hz(**kw: object) -> HetznerHost:
    return HetznerHost(**{"server_type": "cx43", "location": "fsn1", **kw})  # type: ignore[arg-type]


def test_importing_the_spec_leaves_pulumi_unimported() -> None:
    code = (
        "import sys, fleet_sdk.spec, fleet_sdk.stack.settings; print(sorted(m for m in sys.modules if 'pulumi' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT)
    assert out.stdout.strip() == "[]"


def test_prod_fleet_as_specified(prod: Fleet) -> None:
    assert prod.names == [
        "cinnabar",
        "electrum",
        "magnetite",
        "galena",
        "scheelite",
        "pyrite",
        "blackphos",
        "stibnite",
        "rosegold",
        "argentum",
    ]
    cinnabar, electrum = prod.machine("cinnabar"), prod.machine("electrum")
    assert cinnabar.shape and cinnabar.shape.boot == "bios" and cinnabar.host.protect  # type: ignore[union-attr]
    assert electrum.shape and electrum.shape.boot == "uefi"
    scheelite = prod.machine("scheelite").host
    assert isinstance(scheelite, GcpHost) and scheelite.gpu_type == "nvidia-tesla-t4" and scheelite.gpu_count == 1
    assert prod.machine("galena").shape.boot == "uefi"  # type: ignore[union-attr]
    assert prod.machine("argentum").nix_system == "aarch64-darwin"
    assert prod.members("zerotier", "controller") == ["cinnabar"]
    assert prod.members("zerotier", "peer") == ["electrum", "galena", "magnetite", "pyrite", "scheelite"]
    assert "workstation" in effective_tags(prod.machine("rosegold"))


def test_disk_size_and_system_come_from_the_catalog() -> None:
    m = Machine(name="a", host=HetznerHost(server_type="cax21", location="nbg1"))
    assert m.nix_system == "aarch64-linux" and m.disk_bytes == 80 * 10**9
    g = Machine(name="g", host=GcpHost(machine_type="t2a-standard-4", zone="us-central1-a", boot_disk_gb=50))
    assert g.nix_system == "aarch64-linux" and g.disk_bytes == 50 * 10**9


def _refused(build: object) -> str:
    with pytest.raises(SpecError) as info:
        build()  # type: ignore[operator]
    return str(info.value)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: Machine(name="Web_1"), ["machine 'Web_1'", "name:", "not a valid hostname"]),
        (lambda: Machine(name="-web"), ["machine '-web'", "name:"]),
        (lambda: Machine(name="w" * 64), ["name:", "hostname"]),
        (
            lambda: Machine(name="web", host=hz(server_type="cx99")),
            ["machine 'web'", "host.server_type", "'cx99'", "cx43"],
        ),
        (
            lambda: Machine(name="web", host=hz(location="mars1")),
            ["machine 'web'", "host.location", "'mars1'"],
        ),
        (
            lambda: Machine(name="web", host=hz(server_type="cax11", location="ash")),
            ["machine 'web'", "host.location", "cax11 is not sold in ash"],
        ),
        (
            lambda: Machine(name="db", host=GcpHost(machine_type="e2-standard-8", zone="us-central1-z")),
            ["machine 'db'", "host.zone", "us-central1-z"],
        ),
        (
            lambda: Machine(name="db", host=GcpHost(machine_type="e2-superfast-8", zone="us-central1-b")),
            ["machine 'db'", "host.machine_type", "e2-superfast-8"],
        ),
        (
            lambda: Machine(
                name="gpu",
                host=GcpHost(
                    machine_type="e2-standard-8",
                    zone="us-central1-b",
                    gpu_type="nvidia-tesla-t4",
                    gpu_count=1,
                ),
            ),
            ["machine 'gpu'", "host.gpu_type", "e2-standard-8 cannot take a GPU", "n1"],
        ),
        (
            lambda: Machine(
                name="gpu",
                host=GcpHost(
                    machine_type="n1-standard-8",
                    zone="us-central1-b",
                    gpu_type="nvidia-tesla-t4",
                    gpu_count=3,
                ),
            ),
            ["machine 'gpu'", "host.gpu_count", "3"],
        ),
        (
            lambda: Machine(name="gpu", host=GcpHost(machine_type="n1-standard-8", zone="us-central1-b", gpu_count=1)),
            ["machine 'gpu'", "host.gpu_count", "gpu_type"],
        ),
        (
            lambda: Machine(name="1node", host=GcpHost(machine_type="e2-standard-2", zone="us-central1-b")),
            ["machine '1node'", "name:", "start with a letter"],
        ),
        (
            lambda: Machine(name="mac", machine_class="darwin", host=hz()),
            ["machine 'mac'", "host:", "darwin"],
        ),
        (
            lambda: Machine(name="mac", machine_class="darwin", system="x86_64-linux"),
            ["machine 'mac'", "system:", "darwin"],
        ),
        (
            lambda: Machine(name="arm", system="x86_64-linux", host=hz(server_type="cax11")),
            ["machine 'arm'", "system:", "aarch64-linux"],
        ),
        (lambda: Machine(name="t", tags=("has space",)), ["machine 't'", "tags:", "'has space'"]),
        (lambda: Machine(name="t", host=hz(labels={"ok": "bad value!"})), ["machine 't'", "host.labels"]),
        (
            lambda: Fleet(name="f", machines=(Machine(name="a"), Machine(name="a"))),
            ["machine 'a'", "name:", "declared twice"],
        ),
        (
            lambda: Fleet(
                name="f",
                machines=(Machine(name="a"),),
                instances=(ServiceInstance(name="zerotier", roles={"controller": Role(machines=("ghost",))}),),
            ),
            ["instance 'zerotier'", "roles.controller.machines", "'ghost'"],
        ),
        (
            lambda: Fleet(
                name="f",
                machines=(Machine(name="a", tags=("peer",)),),
                instances=(ServiceInstance(name="zerotier", roles={"peer": Role(tags=("peers",))}),),
            ),
            ["instance 'zerotier'", "roles.peer.tags", "'peers'"],
        ),
        (
            lambda: Fleet(
                name="f",
                machines=(Machine(name="a"),),
                instances=(ServiceInstance(name="zerotier", roles={"client": Role(machines=("a",))}),),
            ),
            ["instance 'zerotier'", "no role 'client'", "controller, moon, peer"],
        ),
    ],
)
def test_bad_input_is_refused_naming_machine_and_field(build: object, expected: list[str]) -> None:
    message = _refused(build)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_all_problems_of_a_machine_are_reported_together() -> None:
    message = _refused(lambda: Machine(name="Bad", host=hz(server_type="zz", location="yy")))
    assert "name:" in message and "host.server_type" in message and "host.location" in message


def test_predefined_tags_satisfy_roles() -> None:
    f = Fleet(
        name="f",
        machines=(Machine(name="a"), Machine(name="m", machine_class="darwin")),
        instances=(ServiceInstance(name="x", module="custom", input="self", roles={"any": Role(tags=("darwin",))}),),
    )
    assert f.members("x", "any") == ["m"]


def test_wrong_types_are_pydantic_errors() -> None:
    with pytest.raises(ValidationError):
        Machine(name="a", tags="nixos")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        HetznerHost(server_type="cx43", location="fsn1", bogus=1)  # type: ignore[call-arg]


def test_with_enabled(prod: Fleet) -> None:
    f = prod.with_enabled(["cinnabar"])
    assert [m.name for m in f.machines if m.enabled] == ["cinnabar"]
    assert prod.with_enabled(None) is prod
    with pytest.raises(SpecError, match="'nope'"):
        prod.with_enabled(["nope"])


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"name": "."}, "name: use letters, digits, '.', '_' and '-', not starting with '.'"),
        ({"name": ".."}, "name: use letters"),
        ({"name": ".hidden"}, "name: use letters"),
        ({"name": "a/b"}, "name: use letters"),
        ({"files": (GeneratorFile(name=".."),)}, "files: '..': use letters"),
        ({"files": (GeneratorFile(name=".validation-hash"),)}, "files: '.validation-hash': use letters"),
        ({"prompts": (Prompt(name="..", persist=True),)}, "prompts: '..': use letters"),
        ({"prompts": (Prompt(name="p"), Prompt(name="p"))}, "prompts: 'p' is declared twice"),
        ({"files": (GeneratorFile(name="k", owner="ro ot"),)}, "files.k.owner: 'ro ot' is not a user or group name"),
        ({"files": (GeneratorFile(name="k", group="-wheel"),)}, "files.k.group: '-wheel' is not a user or group name"),
    ],
)
def test_generator_names_that_are_no_path_component_are_refused(fields: dict, words: str) -> None:
    base = {"name": "gen", "files": (GeneratorFile(name="k"),), "script": "true"}
    with pytest.raises(SpecError) as info:
        Generator(**(base | fields))
    assert words in str(info.value)


def test_generator_names_with_inner_dots_and_service_accounts_are_fine() -> None:
    g = Generator(
        name="wifi.fleet",
        files=(GeneratorFile(name="ssh.id_ed25519", owner="nginx", group="www-data"),),
        prompts=(Prompt(name="network-name"),),
        script="true",
    )
    assert g.name == "wifi.fleet"
