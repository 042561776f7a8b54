"""Provider credentials from the fleet's own clan secrets: explicit providers, secret everywhere.

Real sops documents and age keys; only Pulumi's runtime is mocked (fleet_sdk.testing)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest

from fleet_sdk.errors import ConfigError, FleetError, SecretLockedError, SecretNameError, SecretNotFoundError
from fleet_sdk.graph import deploy_fleet, run_program
from fleet_sdk.sops import credentials as cloudsecrets
from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.spec import Fleet, GcpHost, HetznerHost, Machine
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import SECRET, RecordedGraph, recorded_graph

from .cloud_fixtures import CONFIG, GCP_JSON, HETZNER_TOKEN, PLAINTEXTS, CloudRepo, cloud_repo, make_cloud_repo
from .conftest import PROJECT, prod_config

__all__ = ["cloud_repo"]  # the fixture, imported for pytest

HZ_PROVIDER = "pulumi:providers:hcloud"
GCP_PROVIDER = "pulumi:providers:gcp"
CF_PROVIDER = "pulumi:providers:cloudflare"
PROVIDERS = {"hcloud:": HZ_PROVIDER, "gcp:": GCP_PROVIDER, "cloudflare:": CF_PROVIDER}
GCP_CONFIG = {"gcp:project": "fleet-prod", "gcp:region": "us-central1", "gcp:zone": "us-central1-b"}


def lab() -> Fleet:
    return Fleet(
        name="lab",
        machines=(
            Machine(name="web", host=HetznerHost(server_type="cx22", location="fsn1", dns=True)),
            # a machine's own firewall (open ports) is made by its cloud's provider too
            Machine(name="db", host=HetznerHost(server_type="cx22", location="fsn1", open_ports=("tcp/5432",))),
            Machine(
                name="gpu", host=GcpHost(machine_type="e2-standard-2", zone="us-central1-b", open_ports=("tcp/443",))
            ),
        ),
    )


def settings_for(repo: Path, **config: str) -> StackSettings:
    return StackSettings.from_values({"fleet:cloudflareZone": "example.net", **config}, repo)


def record(fleet: Fleet, settings: StackSettings, preview: bool = True) -> RecordedGraph:
    graph = recorded_graph(lambda: deploy_fleet(fleet, settings), preview=preview, config=GCP_CONFIG)
    assert graph.duplicate_urns == []
    return graph


def assert_no_plaintext(text: str) -> None:
    for plaintext in PLAINTEXTS:
        assert plaintext not in text


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "up"])
def test_each_cloud_gets_an_explicit_provider_with_its_secret(cloud_repo: CloudRepo, preview: bool) -> None:
    graph = record(lab(), settings_for(cloud_repo.path, **CONFIG), preview)
    providers = {r.type: r for r in graph.resources if r.type.startswith("pulumi:providers:")}
    assert set(providers) == {HZ_PROVIDER, GCP_PROVIDER, CF_PROVIDER}
    assert providers[HZ_PROVIDER].inputs["token"] == SECRET
    assert providers[CF_PROVIDER].inputs["apiToken"] == SECRET
    gcp = providers[GCP_PROVIDER].inputs
    assert gcp["credentials"] == SECRET
    # an explicit provider does not read gcp:* config itself
    assert (gcp["project"], gcp["region"], gcp["zone"]) == ("fleet-prod", "us-central1", "us-central1-b")
    # every resource of a cloud is made by that cloud's provider
    clouds = [r for r in graph.resources if r.custom and not r.type.startswith(("pulumi:", "command:"))]
    assert {r.type.split(":")[0] for r in clouds} == {"hcloud", "gcp", "cloudflare"}
    for r in clouds:
        assert r.options["provider"] == providers[PROVIDERS[r.type.split(":")[0] + ":"]].urn, r.urn
    # the plaintext is nowhere: inputs, state, outputs, log
    assert_no_plaintext(repr(graph))
    assert graph.log == []


def test_the_secret_value_is_what_the_provider_receives(cloud_repo: CloudRepo) -> None:
    """The mocks see the wire value: the decrypted secret, wrapped as a secret, trailing newline gone."""
    seen: dict[str, object] = {}

    from fleet_sdk.testing import FleetMocks

    class Spy(FleetMocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, object]]:
            if args.typ.startswith("pulumi:providers:"):
                seen[args.typ] = args.inputs
            return super().new_resource(args)

    settings = settings_for(cloud_repo.path, **CONFIG)
    recorded_graph(lambda: deploy_fleet(lab(), settings), preview=False, mocks=Spy(False), config=GCP_CONFIG)
    wrapped = seen[HZ_PROVIDER]["token"]  # type: ignore[index]
    assert wrapped["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    assert wrapped["value"] == HETZNER_TOKEN
    assert seen[GCP_PROVIDER]["credentials"]["value"] == GCP_JSON  # type: ignore[index]


def test_without_the_config_keys_the_default_providers_stay(cloud_repo: CloudRepo) -> None:
    graph = record(lab(), settings_for(cloud_repo.path))
    assert not any(r.type.startswith("pulumi:providers:") for r in graph.resources)
    assert not any("provider" in r.options for r in graph.resources)


def test_only_the_configured_clouds_get_explicit_providers(cloud_repo: CloudRepo) -> None:
    settings = settings_for(cloud_repo.path, **{"fleet:hetznerTokenSecret": "hetzner-api-token"})
    graph = record(lab(), settings)
    assert [r.type for r in graph.resources if r.type.startswith("pulumi:providers:")] == [HZ_PROVIDER]
    for r in graph.resources:
        assert ("provider" in r.options) == r.type.startswith("hcloud:"), r.urn


def test_preview_and_up_agree_with_explicit_providers(cloud_repo: CloudRepo) -> None:
    settings = settings_for(cloud_repo.path, **CONFIG)
    preview, up = record(lab(), settings, True), record(lab(), settings, False)
    assert sorted(r.urn for r in preview.resources) == sorted(r.urn for r in up.resources)
    for before in preview.resources:
        after = up.by_urn()[before.urn]
        assert before.dependencies == after.dependencies and before.options == after.options


# -- bad input ---------------------------------------------------------------------------------


def refusal(fleet: Fleet, settings: StackSettings, preview: bool) -> str:
    with pytest.raises(FleetError) as caught:
        recorded_graph(lambda: deploy_fleet(fleet, settings), preview=preview, config=GCP_CONFIG)
    return str(caught.value)


@pytest.mark.parametrize("name", ["../users", ".hidden", "two words", ""])
def test_a_malformed_secret_name_is_refused(cloud_repo: CloudRepo, name: str) -> None:
    settings = settings_for(cloud_repo.path, **{"fleet:hetznerTokenSecret": name})
    for preview in (True, False):
        message = refusal(lab(), settings, preview)
        assert "fleet:hetznerTokenSecret" in message and repr(name) in message
    with pytest.raises(SecretNameError):
        cloudsecrets.secret_file(cloud_repo.path, "fleet:hetznerTokenSecret", name)


def test_an_unknown_secret_is_refused_with_the_names_that_exist(cloud_repo: CloudRepo) -> None:
    settings = settings_for(cloud_repo.path, **{"fleet:hetznerTokenSecret": "hetzner-token"})
    for preview in (True, False):
        message = refusal(lab(), settings, preview)
        assert "fleet:hetznerTokenSecret" in message and "'hetzner-token'" in message
        assert "bob-only, cloudflare-api-token, gcp-service-account-json, hetzner-api-token" in message
    with pytest.raises(SecretNotFoundError):
        cloudsecrets.secret_file(cloud_repo.path, "fleet:hetznerTokenSecret", "hetzner-token")


def test_a_typo_is_refused_even_while_its_cloud_is_unused(cloud_repo: CloudRepo) -> None:
    hetzner_only = Fleet(name="lab", machines=lab().machines[1:2])
    settings = settings_for(cloud_repo.path, **{"fleet:gcpCredentialsSecret": "gcp-json"})
    assert "fleet:gcpCredentialsSecret" in refusal(hetzner_only, settings, True)
    # a secret of an unused cloud is not opened: bob's, which alice cannot read, is fine
    settings = settings_for(cloud_repo.path, **{"fleet:gcpCredentialsSecret": "bob-only"})
    graph = record(hetzner_only, settings, preview=False)
    assert not any(r.type.startswith("gcp") for r in graph.resources)


def test_a_secret_the_operator_cannot_open_is_refused_by_up(cloud_repo: CloudRepo) -> None:
    settings = settings_for(cloud_repo.path, **{"fleet:hetznerTokenSecret": "bob-only"})
    with pytest.raises(SecretLockedError) as caught:
        recorded_graph(lambda: deploy_fleet(lab(), settings), preview=False)
    message = str(caught.value)
    assert "fleet:hetznerTokenSecret" in message and "sops/secrets/bob-only/secret" in message
    assert "user bob" in message and "not to you (user alice)" in message
    assert "clan secrets users add-secret alice bob-only" in message and "fleet vars fix" in message


def test_a_dry_run_without_the_key_notes_it_and_plans_an_unknown_secret(
    cloud_repo: CloudRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud_repo.keyless(monkeypatch)
    settings = settings_for(cloud_repo.path, **CONFIG)
    graph = record(lab(), settings, preview=True)
    notes = [message for severity, message in graph.log if severity == "warning"]
    assert len(notes) == 3 and all("no age key of yours was found (none in " in n for n in notes)
    assert any("fleet:hetznerTokenSecret" in n and "user alice" in n for n in notes)
    assert graph.one(HZ_PROVIDER, "lab").inputs["token"] == SECRET  # a secret, its value unknown
    with pytest.raises(SecretLockedError) as caught:
        recorded_graph(lambda: deploy_fleet(lab(), settings), preview=False)
    # one refusal naming every credential it could not open
    lines = str(caught.value).splitlines()
    assert [line.split(":")[1] for line in lines] == [
        "cloudflareTokenSecret",
        "gcpCredentialsSecret",
        "hetznerTokenSecret",
    ]


def test_a_linked_user_whose_copy_is_not_rekeyed_is_told_to_run_fix(cloud_repo: CloudRepo) -> None:
    tree = SopsTree(cloud_repo.path)
    tree.add_member(tree.secret_dir("bob-only"), "users", "alice")  # linked, but not re-keyed yet
    with pytest.raises(SecretLockedError) as caught:
        cloudsecrets.read_secret(cloud_repo.path, "fleet:x", "bob-only", [cloud_repo.alice])
    message = str(caught.value)
    assert "your user alice is linked" in message and "fleet vars fix" in message and "user bob" in message


def test_a_key_of_no_user_is_told_to_register(cloud_repo: CloudRepo) -> None:
    from fleet_sdk.sops import age

    stranger, _ = age.generate()
    with pytest.raises(SecretLockedError, match="fleet vars keygen"):
        cloudsecrets.read_secret(cloud_repo.path, "fleet:x", "hetzner-api-token", [stranger])


def test_a_damaged_or_blank_secret_is_refused_naming_the_key(cloud_repo: CloudRepo) -> None:
    tree = SopsTree(cloud_repo.path)
    tree.write_secret(tree.secret_dir("blank"), b"\n", {"users": ["alice"]})
    with pytest.raises(ConfigError, match="fleet:x: sops/secrets/blank/secret is empty"):
        cloudsecrets.read_secret(cloud_repo.path, "fleet:x", "blank", [cloud_repo.alice])
    path = tree.secret_dir("hetzner-api-token") / "secret"
    document = json.loads(path.read_text())
    document["data"] = document["data"].replace("data:", "data:AAAA", 1)
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="fleet:x: .*fails authentication"):
        cloudsecrets.read_secret(cloud_repo.path, "fleet:x", "hetzner-api-token", [cloud_repo.alice])


def test_the_program_refuses_without_a_traceback(cloud_repo: CloudRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    cloud_repo.keyless(monkeypatch)
    config = prod_config(**{"fleet:repo": str(cloud_repo.path)})
    with pytest.raises(pulumi.RunError, match="fleet:hetznerTokenSecret") as caught:
        recorded_graph(lambda: run_program(PROJECT), stack="prod", config=config, preview=False)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_engine_module_imports_no_pulumi() -> None:
    source = Path(cloudsecrets.__file__).read_text()
    modules = {
        alias.name if isinstance(node, ast.Import) else (node.module or "")
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {m for m in modules if m.startswith(("pulumi", "fleet_sdk.graph", "fleet_sdk.testing"))}


# -- fleet plan --------------------------------------------------------------------------------


def write_project(root: Path, repo: Path) -> Path:
    (root / "stacks").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    config = {"fleet:repo": str(repo), "fleet:cloudflareZone": "example.net", **CONFIG, **GCP_CONFIG}
    (root / "Pulumi.dev.yaml").write_text("config:\n" + "".join(f"  {k}: {v}\n" for k, v in config.items()))
    (root / "stacks" / "dev.py").write_text(
        "from fleet_sdk.spec import *\n"
        "def build(settings):\n"
        "    return Fleet(name='lab', machines=(\n"
        "        Machine(name='web', host=HetznerHost(server_type='cx22', location='fsn1', dns=True)),\n"
        "        Machine(name='gpu', host=GcpHost(machine_type='e2-standard-2', zone='us-central1-b')),\n"
        "    ))\n"
    )
    return root


def plan_json(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet_sdk", "plan", "--json"],
        check=False,
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
    )


def test_fleet_plan_shows_the_tokens_only_as_secrets(tmp_path: Path) -> None:
    repo = make_cloud_repo(tmp_path / "repo")
    project = write_project(tmp_path / "project", repo.path)
    base = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_AGE_KEY")}
    keyless = {**base, "SOPS_AGE_KEY_FILE": str(tmp_path / "none.txt")}
    with_key = {**base, "SOPS_AGE_KEY": repo.alice}  # the key in the environment, never in argv
    runs = {"with key": plan_json(project, with_key), "without key": plan_json(project, keyless)}
    documents = {}
    for what, out in runs.items():
        assert out.returncode == 0, (what, out.stderr)
        assert_no_plaintext(out.stdout + out.stderr)
        documents[what] = json.loads(out.stdout)
        providers = {r["type"]: r for r in documents[what]["resources"] if r["type"].startswith("pulumi:providers:")}
        assert providers[HZ_PROVIDER]["inputs"] == {"token": SECRET}
        assert providers[CF_PROVIDER]["inputs"] == {"apiToken": SECRET}
        assert providers[GCP_PROVIDER]["inputs"]["credentials"] == SECRET
        server = next(r for r in documents[what]["resources"] if r["type"] == "hcloud:index/server:Server")
        assert server["options"]["provider"] == providers[HZ_PROVIDER]["urn"]
    # the same document with and without the key: a plan does not depend on who makes it
    assert documents["with key"] == documents["without key"]
    assert runs["with key"].stderr == ""
    assert runs["without key"].stderr.count("warning: fleet:") == 3
    assert "`pulumi up` refuses" in runs["without key"].stderr
