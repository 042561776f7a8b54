"""The deploy step of each machine with deploy settings: what it waits for (vars step, server, the
machines its `after` names), what re-runs it (closure, stored secret ciphertext, settings), its command
and the stack outputs read from its JSON result."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from typing_extensions import override

from fleet_sdk.deploy.probe import Closure, Probed, Unknown
from fleet_sdk.deploy.stored import DIGEST_KEY, ciphertext_digest
from fleet_sdk.errors import ClosureUnknownError
from fleet_sdk.graph import deploy as graph_deploy
from fleet_sdk.graph import deploy_fleet
from fleet_sdk.graph.offline import MOCK_DEPLOY_KEY
from fleet_sdk.graph.steps import DEPLOY_KEY_VAR, content_hash
from fleet_sdk.spec import Deploy, Fleet, Generator, GeneratorFile, HealthChecks, HetznerHost, Machine
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import COMPUTED, FleetMocks, RecordedGraph, recorded_graph

COMMAND = "command:local:Command"
SERVER = "hcloud:index/server:Server"
MACHINE = "fleet:index:Machine"

APP = Generator(
    name="app",
    files=(GeneratorFile(name="token", needed_for="activation"), GeneratorFile(name="api")),  # api: for services
    script="true",
)
WG = Generator(name="wg", share=True, files=(GeneratorFile(name="psk", needed_for="activation"),), script="true")
# the ciphertext each stored sops document holds (any bytes: the digest never opens them)
STORED = {
    "vars/per-machine/web/app/token/secret": b"web-token-v1",
    "vars/per-machine/web/app/api/secret": b"web-api-v1",
    "vars/per-machine/cache/app/token/secret": b"cache-token-v1",
    "vars/per-machine/cache/app/api/secret": b"cache-api-v1",
    "vars/per-machine/plain/app/token/secret": b"plain-token-v1",
    "vars/per-machine/plain/app/api/secret": b"plain-api-v1",
    "vars/shared/wg/psk/secret": b"wg-psk-v1",
    "sops/secrets/db-age.key/secret": b"db-age-key-v1",
}
DEPLOYED = ["db", "web", "cache", "mac"]


def hz() -> HetznerHost:
    return HetznerHost(server_type="cx22", location="nbg1")


def make_fleet(web_deploy: Deploy | None = None) -> Fleet:
    return Fleet(
        name="acme",
        machines=(
            Machine(name="web", host=hz(), generators=(APP, WG), deploy=web_deploy or Deploy(after=("db",))),
            Machine(name="db", host=hz(), generators=(WG,), deploy=Deploy(reboot="if-needed")),
            Machine(name="cache", host=hz(), generators=(APP,), deploy=Deploy(after=("web",))),
            Machine(name="mac", machine_class="darwin", target_host="me@mac.zt", deploy=Deploy(after=("db",))),
            Machine(name="plain", host=hz(), generators=(APP,)),  # not deployed by the graph
        ),
    )


def out_path(machine: str, version: str = "1") -> str:
    return f"/nix/store/{hashlib.sha256(f'{machine}-{version}'.encode()).hexdigest()[:32]}-nixos-system-{machine}"


def probed(fleet: Fleet, versions: dict[str, str] | None = None) -> dict[str, Probed]:
    """What the closure probe says of a flake where each deployed machine has a system."""
    versions = versions or {}
    return {
        m.name: Closure(
            m.name, out_path(m.name, versions.get(m.name, "1")) + ".drv", out_path(m.name, versions.get(m.name, "1"))
        )
        for m in fleet.machines
        if m.deploy is not None and m.enabled
    }


@pytest.fixture
def repo(fleet_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # the systems as the closure probe finds them (tests/test_closure_probe.py runs it against real Nix)
    monkeypatch.setattr(graph_deploy, "probe", lambda fleet, settings: probed(fleet))
    for rel, data in STORED.items():
        (fleet_repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (fleet_repo / rel).write_bytes(data)
    return fleet_repo


def record(fleet: Fleet, repo: Path, preview: bool = False, mocks: FleetMocks | None = None) -> RecordedGraph:
    graph = recorded_graph(
        lambda: deploy_fleet(fleet, StackSettings(repo=repo)), preview=preview, stack="dev", mocks=mocks
    )
    assert graph.duplicate_urns == []
    return graph


def triggers(graph: RecordedGraph) -> dict[str, list[Any]]:
    return {c.name.removesuffix("-deploy"): c.inputs["triggers"] for c in graph.of_type(COMMAND) if "-deploy" in c.name}


def changed(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> set[str]:
    assert set(before) == set(after)
    return {m for m in before if before[m] != after[m]}


def test_a_deploy_step_per_deployed_machine_under_its_component(repo: Path) -> None:
    graph = record(make_fleet(), repo)
    steps = {c.name for c in graph.of_type(COMMAND) if c.name.endswith("-deploy")}
    assert steps == {f"{m}-deploy" for m in DEPLOYED}  # not `plain`, whose deploy is unset
    for m in DEPLOYED:
        step = graph.one(COMMAND, f"{m}-deploy")
        assert step.parent == graph.one(MACHINE, m).urn
        assert "delete" not in step.inputs and "update" not in step.inputs  # deleting it does nothing
        assert step.inputs["addPreviousOutputInEnv"] is False
        assert step.options["ignore_changes"] == ["environment"]
        assert set(step.inputs["environment"]) == {"FLEET_PYTHON", "FLEET_REPO", "FLEET_PROJECT"}


def test_the_step_waits_for_vars_server_and_the_machines_it_deploys_after(repo: Path) -> None:
    graph = record(make_fleet(), repo)

    def urn(type_: str, name: str) -> str:
        return graph.one(type_, name).urn

    web = graph.one(COMMAND, "web-deploy")
    assert {urn(COMMAND, "web-vars"), urn(SERVER, "web"), urn(COMMAND, "db-deploy")} <= set(web.dependencies)
    db = graph.one(COMMAND, "db-deploy")
    assert {urn(COMMAND, "db-vars"), urn(SERVER, "db")} <= set(db.dependencies)
    assert not any(d.endswith("-deploy") for d in db.dependencies)  # the first wave waits for no deploy
    cache = graph.one(COMMAND, "cache-deploy")
    assert urn(COMMAND, "web-deploy") in cache.dependencies and urn(COMMAND, "db-deploy") not in cache.dependencies
    # a machine by hand: no server, no vars step (no generators); only its wave
    assert graph.one(COMMAND, "mac-deploy").dependencies == (urn(COMMAND, "db-deploy"),)


def test_a_disabled_machine_passes_its_wave_on(repo: Path) -> None:
    fleet = make_fleet().with_enabled(["db", "cache", "mac", "plain"])
    graph = record(fleet, repo)
    assert not [c for c in graph.of_type(COMMAND) if c.name == "web-deploy"]
    # cache deploys after web, which is disabled: it still waits for what web waited for
    assert graph.one(COMMAND, "db-deploy").urn in graph.one(COMMAND, "cache-deploy").dependencies
    assert "web" not in record(fleet, repo).outputs["machines"]


def test_the_command_is_plain_argv_with_the_servers_address_as_target(repo: Path) -> None:
    graph = record(make_fleet(), repo)
    web_ip = graph.one(SERVER, "web").state["ipv4Address"]
    for m in DEPLOYED:
        words = shlex.split(graph.one(COMMAND, f"{m}-deploy").inputs["create"])
        assert words[:3] == ["$FLEET_PYTHON", "-m", "fleet_sdk"]
        assert words[3:9] == ["machine", "deploy", m, "--json", "--stack", "dev"]
        for word in words[3:]:
            assert re.fullmatch(r"[A-Za-z0-9@._:/=\[\]-]+|\$FLEET_(REPO|PROJECT)", word), (m, word)
    assert shlex.split(graph.one(COMMAND, "web-deploy").inputs["create"])[-2:] == ["--target-host", f"root@{web_ip}"]
    # a machine with a target host: the CLI reads it from the spec
    assert "--target-host" not in shlex.split(graph.one(COMMAND, "mac-deploy").inputs["create"])


def test_a_set_target_host_wins_over_the_servers_address(repo: Path) -> None:
    fleet = make_fleet()
    web = fleet.machine("web").model_copy(update={"target_host": "admin@web.zt"})
    fleet = fleet.model_copy(update={"machines": tuple(web if m.name == "web" else m for m in fleet.machines)})
    assert "--target-host" not in shlex.split(record(fleet, repo).one(COMMAND, "web-deploy").inputs["create"])


def test_triggers_are_closure_secrets_and_settings(repo: Path) -> None:
    fleet = make_fleet()
    graph = record(fleet, repo)
    web = fleet.machine("web")
    assert graph.one(COMMAND, "web-deploy").inputs["triggers"] == [
        out_path("web"),
        graph_deploy.secrets_trigger(fleet, web, StackSettings(repo=repo)),
        content_hash(Deploy().settings()),
    ]
    # no plaintext: the system's store path, then hex digests only
    assert all(re.fullmatch(r"[0-9a-f]{64}", t) for ts in triggers(graph).values() for t in ts[1:])


def test_a_changed_closure_re_runs_exactly_that_machines_deploy(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = triggers(record(make_fleet(), repo))
    monkeypatch.setattr(graph_deploy, "probe", lambda fleet, settings: probed(fleet, {"cache": "2"}))
    after = triggers(record(make_fleet(), repo))
    assert changed(before, after) == {"cache"}
    assert after["cache"][0] == out_path("cache", "2") and after["cache"][1:] == before["cache"][1:]


def test_an_unknown_system_is_a_warning_in_preview_and_refused_by_up(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unknown(fleet: Fleet, settings: StackSettings) -> dict[str, Probed]:
        return {**probed(fleet), "web": Unknown("web", "flake github:acme/fleet is not on this machine")}

    monkeypatch.setattr(graph_deploy, "probe", unknown)
    preview = record(make_fleet(), repo, preview=True)
    assert ("warning", "machine 'web': system unknown: flake github:acme/fleet is not on this machine") in preview.log
    assert preview.one(COMMAND, "web-deploy").inputs["triggers"][0] == (
        "unknown: flake github:acme/fleet is not on this machine"
    )
    with pytest.raises(ClosureUnknownError, match=r"machine 'web': its system is unknown \(flake github:acme"):
        record(make_fleet(), repo)
    # with the probe off, the source fingerprint is the trigger and up goes on
    off = Unknown("web", "fleet:closureProbe is false", fingerprint="f" * 64)
    monkeypatch.setattr(graph_deploy, "probe", lambda fleet, settings: {**probed(fleet), "web": off})
    assert triggers(record(make_fleet(), repo))["web"][0] == "source:" + "f" * 64


@pytest.mark.parametrize(
    ("stored", "reached"),
    [
        ("vars/shared/wg/psk/secret", {"web", "db"}),  # a shared activation secret: every machine with it
        ("vars/per-machine/web/app/token/secret", {"web"}),
        ("vars/per-machine/cache/app/token/secret", {"cache"}),
        ("sops/secrets/db-age.key/secret", {"db"}),  # the machine's age key, uploaded as key.txt
        ("vars/per-machine/web/app/api/secret", set()),  # a services secret stays in the store: not uploaded
    ],
)
def test_a_changed_ciphertext_re_runs_the_deploys_it_reaches(repo: Path, stored: str, reached: set[str]) -> None:
    before = triggers(record(make_fleet(), repo))
    (repo / stored).write_bytes(STORED[stored] + b"-re-encrypted")
    after = triggers(record(make_fleet(), repo))
    assert changed(before, after) == reached
    for m in reached:
        assert (after[m][0], after[m][2]) == (before[m][0], before[m][2])  # only the secrets trigger


def test_a_new_secret_re_runs_the_deploy_it_reaches(repo: Path) -> None:
    before = triggers(record(make_fleet(), repo))
    (repo / "sops/secrets/web-age.key").mkdir(parents=True)
    (repo / "sops/secrets/web-age.key/secret").write_bytes(b"web-age-key")
    assert changed(before, triggers(record(make_fleet(), repo))) == {"web"}


def test_changed_settings_re_run_the_deploy_but_a_changed_order_does_not(repo: Path) -> None:
    before = triggers(record(make_fleet(), repo))
    checks = Deploy(after=("db",), health_checks=HealthChecks(units=("nginx.service",)))
    after = triggers(record(make_fleet(web_deploy=checks), repo))
    assert changed(before, after) == {"web"} and after["web"][:2] == before["web"][:2]
    reordered = triggers(record(make_fleet(web_deploy=Deploy(after=("db", "mac"))), repo))
    assert changed(before, reordered) == set()


def test_preview_and_up_register_the_same_resources(repo: Path) -> None:
    preview, up = record(make_fleet(), repo, preview=True), record(make_fleet(), repo, preview=False)
    assert sorted(r.urn for r in preview.resources) == sorted(r.urn for r in up.resources)
    for before in preview.resources:
        after = up.by_urn()[before.urn]
        assert before.dependencies == after.dependencies and before.options == after.options, before.name
    # the target is the server's address: unknown until it exists
    assert preview.one(COMMAND, "web-deploy").inputs.get("create", COMPUTED) == COMPUTED
    assert preview.outputs["machines"]["web"]["system"] == COMPUTED


def test_outputs_of_deployed_machines_only(repo: Path) -> None:
    machines = record(make_fleet(), repo).outputs["machines"]
    # the stock mocks print nothing for a deploy: the outputs are there, without a value
    assert machines["web"]["system"] is None and machines["web"]["reboot_required"] is None
    assert machines["web"]["ipv4"].startswith("192.0.2.")
    assert machines["mac"] == {"system": None, "reboot_required": None}  # deployed, no cloud resources
    assert set(machines["plain"]) == {"ipv4", "ipv6"}  # not deployed: addresses only


class DeployedMocks(FleetMocks):
    """Up mocks whose deploy steps print what `fleet machine deploy --json` prints."""

    @override
    def command_stdout(self, state: dict[str, Any]) -> str:
        words = shlex.split(str(state.get("create", "")))
        if words[3:5] == ["machine", "deploy"]:
            m = words[5]
            result = {
                "machine": m,
                "status": "deployed",
                "current": f"/nix/store/{m}-system",
                "reboot_required": m == "db",
            }
            return json.dumps({m: result}, indent=2)
        return super().command_stdout(state)


def test_outputs_come_from_the_deploy_result(repo: Path) -> None:
    machines = record(make_fleet(), repo, mocks=DeployedMocks(preview=False)).outputs["machines"]
    assert machines["web"]["system"] == "/nix/store/web-system" and machines["web"]["reboot_required"] is False
    assert machines["db"]["reboot_required"] is True
    assert machines["mac"] == {"system": "/nix/store/mac-system", "reboot_required": False}


class _DigestMocks(FleetMocks):
    """The vars step prints each machine's secrets digest, as `fleet vars generate --json` does."""

    @override
    def command_stdout(self, state: dict[str, Any]) -> str:
        words = str(state.get("create", "")).split()
        if "generate" in words:
            machine = words[words.index("generate") + 1]
            return json.dumps({machine: {DIGEST_KEY: f"after-generate-{machine}", DEPLOY_KEY_VAR: MOCK_DEPLOY_KEY}})
        return super().command_stdout(state)


def test_secrets_not_generated_yet_take_the_digest_the_vars_step_reports(
    fleet_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first `pulumi up` generates the secrets in its vars steps: the deploy's trigger must be the
    # digest after that, else the next run (reading them from the repository) would deploy again
    monkeypatch.setattr(graph_deploy, "probe", lambda fleet, settings: probed(fleet))
    graph = record(make_fleet(), fleet_repo, mocks=_DigestMocks(preview=False))
    assert triggers(graph)["web"][1] == "after-generate-web"
    for rel, data in STORED.items():
        (fleet_repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (fleet_repo / rel).write_bytes(data)
    # generated: the repository's digest, so a secret changed by hand re-runs the deploy
    again = record(make_fleet(), fleet_repo, mocks=_DigestMocks(preview=False))
    assert triggers(again)["web"][1] == ciphertext_digest(fleet_repo, make_fleet(), make_fleet().machine("web"))
