"""The vars step of each machine in the graph, and the deploy key flowing from it to the clouds."""

from __future__ import annotations

from pathlib import Path

from fleet_sdk.graph import deploy_fleet
from fleet_sdk.graph.offline import MOCK_DEPLOY_KEY
from fleet_sdk.spec import Fleet, GcpHost, Generator, GeneratorFile, HetznerHost, Machine
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import COMPUTED, recorded_graph

COMMAND = "command:local:Command"


def _write(inputs, prompts, out: Path) -> None:
    for name in ("id_ed25519", "id_ed25519.pub"):
        (out / name).write_text("x")


DEPLOY_KEY = Generator(
    name="deploy-key",
    share=True,
    files=(GeneratorFile(name="id_ed25519", deploy=False), GeneratorFile(name="id_ed25519.pub", secret=False)),
    python=_write,
)


def state(version: str) -> Generator:
    return Generator(
        name="state-version", files=(GeneratorFile(name="version", secret=False),), script=f"echo {version}"
    )


def fleet(web_state: str = "25.05", extra: tuple[Machine, ...] = ()) -> Fleet:
    return Fleet(
        name="f",
        machines=(
            Machine(
                name="web",
                host=HetznerHost(server_type="cx22", location="fsn1"),
                generators=(DEPLOY_KEY, state(web_state)),
            ),
            Machine(
                name="db",
                host=GcpHost(machine_type="e2-standard-2", zone="us-central1-b"),
                generators=(DEPLOY_KEY, state("25.05")),
            ),
            Machine(name="mac", machine_class="darwin", generators=(state("25.05"),)),
            *extra,
        ),
    )


def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(repo=tmp_path / "repo", project=tmp_path / "project")


def test_each_machine_gets_a_vars_step_running_the_cli(tmp_path: Path) -> None:
    graph = recorded_graph(lambda: deploy_fleet(fleet(), settings(tmp_path)), stack="prod")
    steps = {r.name: r for r in graph.of_type(COMMAND)}
    assert set(steps) == {"web-vars", "db-vars", "mac-vars"}
    web = steps["web-vars"]
    assert web.parent == graph.one("fleet:index:Machine", "web").urn
    assert web.inputs["create"] == (
        '"$FLEET_PYTHON" -m fleet_sdk vars generate web --json --stack prod --repo "$FLEET_REPO" --project "$FLEET_PROJECT"'
    )
    assert str(tmp_path) not in web.inputs["create"]  # paths only in the environment, which diffs ignore
    assert web.inputs["environment"]["FLEET_REPO"] == str((tmp_path / "repo").resolve())
    assert web.options["ignore_changes"] == ["environment"]
    assert web.inputs["addPreviousOutputInEnv"] is False
    assert len(web.inputs["triggers"]) == 1 and len(web.inputs["triggers"][0]) == 64


def test_deploy_key_reaches_the_clouds_through_the_vars_step(tmp_path: Path) -> None:
    preview = recorded_graph(lambda: deploy_fleet(fleet(), settings(tmp_path)))
    web_vars = preview.one(COMMAND, "web-vars")
    key = preview.one("hcloud:index/sshKey:SshKey", "f-deploy")
    assert web_vars.urn in key.dependencies
    assert key.inputs.get("publicKey", COMPUTED) == COMPUTED  # known after the step ran
    instance = preview.one("gcp:compute/instance:Instance", "db")
    assert web_vars.urn in instance.dependencies
    assert preview.log == []  # no warning about a missing key file: the step makes it
    up = recorded_graph(lambda: deploy_fleet(fleet(), settings(tmp_path)), preview=False)
    assert up.one("hcloud:index/sshKey:SshKey", "f-deploy").inputs["publicKey"] == MOCK_DEPLOY_KEY
    assert up.one("gcp:compute/instance:Instance", "db").inputs["metadata"]["ssh-keys"] == f"root:{MOCK_DEPLOY_KEY}"
    assert sorted(r.urn for r in preview.resources) == sorted(r.urn for r in up.resources)


def test_trigger_changes_only_for_the_machine_whose_generators_changed(tmp_path: Path) -> None:
    def triggers(f: Fleet) -> dict[str, list]:
        g = recorded_graph(lambda: deploy_fleet(f, settings(tmp_path)))
        return {r.name: r.inputs["triggers"] for r in g.of_type(COMMAND)}

    before, after = triggers(fleet("25.05")), triggers(fleet("25.11"))
    assert before["web-vars"] != after["web-vars"]
    assert before["db-vars"] == after["db-vars"] and before["mac-vars"] == after["mac-vars"]
    assert triggers(fleet("25.05")) == before  # stable across runs


def test_disabled_machines_keep_their_vars_step(tmp_path: Path) -> None:
    f = fleet().with_enabled(["db"])
    graph = recorded_graph(lambda: deploy_fleet(f, settings(tmp_path)))
    assert {r.name for r in graph.of_type(COMMAND)} == {"web-vars", "db-vars", "mac-vars"}
    assert graph.of_type("hcloud:index/server:Server") == []
