"""`fleet machine deploy` end to end: a throwaway project whose stack names target hosts, the host key
read from the machine's vars, the system given with --system or built from the stack's flake, JSON
results, and one machine's failure leaving the others deployed (exit 1)."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import pytest

from fleet_sdk.cli.machine import _settings, _systems
from fleet_sdk.deploy import DeployRequest, DeployResult, DeploySettings, deploy_machines
from fleet_sdk.deploy import fleet as deploy_fleet_module
from fleet_sdk.errors import ConfigError
from fleet_sdk.spec import Deploy, HealthChecks
from fleet_sdk.testing import FakeFlake, FakeSystem, FakeTargets, nix_env
from fleet_sdk.testing.targethost import missing_requirements

from .vars_project import fleet_cli, make_project

STACK = """
from fleet_sdk.spec import Fleet, Machine

def build(settings):
    return Fleet(name="demo", machines=(
        Machine(name="web1", target_host="{web1}"),
        Machine(name="web2", target_host="{web2}"),
        Machine(name="later"),  # no target host: not deployed by default
    ))
"""


def test_system_arguments() -> None:
    assert _systems(["/nix/store/a"], ["web1"]) == {"web1": "/nix/store/a"}
    assert _systems(["web1=/nix/store/a", "web2=/nix/store/b"], ["web1", "web2"]) == {
        "web1": "/nix/store/a",
        "web2": "/nix/store/b",
    }
    with pytest.raises(ConfigError, match="name the machine"):
        _systems(["/nix/store/a"], ["web1", "web2"])


def test_each_machine_deploys_with_its_spec_settings_and_the_flags_given() -> None:
    unset = argparse.Namespace(reboot=None, on_unit_failure=None, build_on=None)
    spec = Deploy(reboot="if-needed", build_on="remote", confirm_timeout=30, health_checks=HealthChecks(units=("x",)))
    mine = _settings(unset, spec)
    assert (mine.reboot, mine.build_on, mine.confirm_timeout, mine.health_units) == ("if-needed", "remote", 30, ("x",))
    assert _settings(unset, None) == DeploySettings()  # a machine without deploy settings: the defaults
    given = argparse.Namespace(reboot="never", on_unit_failure="keep", build_on=None)
    chosen = _settings(given, spec)
    assert (chosen.reboot, chosen.on_unit_failure, chosen.build_on) == ("never", "keep", "remote")


def test_deploy_machines_takes_settings_per_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, DeploySettings | None] = {}

    def fake(request: DeployRequest, settings: DeploySettings | None, *rest: object) -> DeployResult:
        seen[request.machine] = settings
        return DeployResult(request.machine, "unchanged")

    monkeypatch.setattr(deploy_fleet_module, "deploy_machine", fake)
    slow = DeploySettings(confirm_timeout=120)
    requests = [DeployRequest(m, f"root@{m}.zt", "/nix/store/s") for m in ("web1", "web2")]
    deploy_machines(requests, {"web1": slow})
    assert seen == {"web1": slow, "web2": None}
    deploy_machines(requests, slow)
    assert seen == {"web1": slow, "web2": slow}


@pytest.mark.integration
@pytest.mark.skipif(bool(missing_requirements()), reason="; ".join(missing_requirements()))
def test_deploy_from_the_stack(tmp_path: Path, target_hosts: FakeTargets) -> None:
    flake = FakeFlake(tmp_path / "flake", {"web1": FakeSystem(version="1"), "web2": FakeSystem(version="1")})
    old = flake.build_all()
    web1, web2 = target_hosts.new("web1"), target_hosts.new("web2")
    for t in (web1, web2):
        t.install(old[t.name])
    project, env = make_project(tmp_path / "fleet", textwrap.dedent(STACK).format(web1=web1.target, web2=web2.target))
    (project / "Pulumi.dev.yaml").write_text(f"config:\n  fleet:flake: {flake.ref}\n")
    env["NIX_CONFIG"] = nix_env()["NIX_CONFIG"]
    for t in (web1, web2):  # the host key where the openssh generator keeps it (clan layout)
        value = project / f"vars/per-machine/{t.name}/openssh/ssh.id_ed25519.pub/value"
        value.parent.mkdir(parents=True)
        value.write_text(t.host_public_key + "\n")
    flake.set("web1", version="2")
    new = flake.build("web1")
    key = str(web1.client_key)

    done = fleet_cli(project, env, "machine", "deploy", "web1", "--system", new, "-i", key, "--json")
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)["web1"]
    assert (result["status"], result["previous"], result["current"]) == ("deployed", old["web1"], new)
    assert b"[web1] preflight on root@127.0.0.1" in done.stderr
    assert web1.current_system() == new

    # every machine with a target host, built from the flake; web2 is down: web1 is not held back
    flake.set("web1", version="3")
    newer = flake.build("web1")
    web2.stop()
    done = fleet_cli(project, env, "machine", "deploy", "-i", key, "--jobs", "2")
    assert done.returncode == 1
    out = done.stdout.decode()
    assert f"[web1] deployed {newer} (generation 3)" in out and "[web2] failed" in out
    assert "error: machine web2: no answer over ssh" in done.stderr.decode()
    assert web1.current_system() == newer
