"""`fleet migrate terranix`: a terranix (OpenTofu) state as Pulumi's bulk import file, checked against
what `fleet plan --json` declares for the prod stack.

The fixture is shaped like the user's terranix state: the Hetzner servers cinnabar, electrum and
magnetite with their deploy key, the GCP instances galena and scheelite (a for_each in a module) with
their two firewall rules, the A records of the Hetzner machines, a firewall for magnetite's web
ports, and what has no counterpart in the stack (a CNAME, a server of no machine, the install's
null_resource, the tls key, a counted random_id, a data source)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.cli import main
from fleet_sdk.review.migrate import KINDS

from .cloud_fixtures import make_cloud_repo
from .conftest import PROJECT

FIXTURE = Path(__file__).parent / "fixtures" / "terranix" / "terraform.tfstate"
MACHINES = ["cinnabar", "electrum", "magnetite", "galena", "scheelite"]
ENABLE_ALL = "fleet:enabled=" + json.dumps(MACHINES)
SERVER = "hcloud:index/server:Server"
INSTANCE = "gcp:compute/instance:Instance"
CLOUD_TYPES = {kind.ours for kind in KINDS.values()}

# state address -> the stack's resource (type, logical name) it is imported as
EXPECTED = {
    "hcloud_server.cinnabar": (SERVER, "cinnabar"),
    "hcloud_server.electrum": (SERVER, "electrum"),
    "hcloud_server.magnetite": (SERVER, "magnetite"),
    "hcloud_ssh_key.terraform": ("hcloud:index/sshKey:SshKey", "fleet-deploy"),
    "hcloud_firewall.web": ("hcloud:index/firewall:Firewall", "magnetite-ports"),
    'module.gcp.google_compute_instance.node["galena"]': (INSTANCE, "galena"),
    'module.gcp.google_compute_instance.node["scheelite"]': (INSTANCE, "scheelite"),
    "module.gcp.google_compute_firewall.allow_ssh": ("gcp:compute/firewall:Firewall", "fleet-ssh"),
    "module.gcp.google_compute_firewall.allow_zerotier": ("gcp:compute/firewall:Firewall", "fleet-zerotier"),
    "cloudflare_dns_record.cinnabar": ("cloudflare:index/dnsRecord:DnsRecord", "cinnabar-a"),
    "cloudflare_dns_record.magnetite": ("cloudflare:index/dnsRecord:DnsRecord", "magnetite-a"),
}
SKIPPED = {
    "cloudflare_dns_record.niks3": "the stack declares no CNAME record 'niks3'",
    "hcloud_server.oldbox": "no machine 'oldbox' in stack prod",
    "null_resource.install-cinnabar": "the stack declares no null_resource resources",
    "random_id.suffix[0]": "the stack declares no random_id resources",
    "tls_private_key.ssh_deploy_key": "the stack declares no tls_private_key resources",
    "data.external.hetzner-api-token": "a data source",
}


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.out)  # type: ignore[no-any-return]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    code = main(list(args))
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The prod stack's fleet repository (deploy key, provider secrets the operator opens)."""
    cloud = make_cloud_repo(tmp_path_factory.mktemp("migrate") / "fleet-repo")
    with pytest.MonkeyPatch.context() as mp:
        cloud.as_operator(mp, cloud.alice)
        yield cloud.path


def stack_args(repo: Path, *config: str) -> list[str]:
    return ["--project", str(PROJECT), "--stack", "prod", "--repo", str(repo), *(a for c in config for a in ("-c", c))]


@pytest.fixture(scope="module")
def everyone(repo: Path) -> tuple[Run, dict[str, Any]]:
    """The migration and the plan of the prod stack with the five cloud machines enabled."""
    return _run_both(repo, ENABLE_ALL)


def _run_both(repo: Path, *config: str) -> tuple[Run, dict[str, Any]]:
    """`fleet migrate terranix FIXTURE` and `fleet plan --json` with the same stack config (module
    fixtures have no capsys: captured by hand)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["migrate", "terranix", str(FIXTURE), *stack_args(repo, *config)])
    migration = Run(code, out.getvalue(), err.getvalue())
    plan_out = io.StringIO()
    with contextlib.redirect_stdout(plan_out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["plan", "--json", *stack_args(repo, *config)]) == 0
    return migration, json.loads(plan_out.getvalue())


def state_ids() -> dict[str, str]:
    """address -> the import id the state gives (a DNS record's is zone_id/id)."""
    ids = {}
    for r in json.loads(FIXTURE.read_text())["resources"]:
        prefix = f"{r['module']}." if "module" in r else ""
        for i in r["instances"]:
            key = f"[{json.dumps(i['index_key'])}]" if "index_key" in i else ""
            a = i["attributes"]
            ids[f"{prefix}{r['type']}.{r['name']}{key}"] = (
                f"{a['zone_id']}/{a['id']}" if r["type"] == "cloudflare_dns_record" else a["id"]
            )
    return ids


def urns_of(document: dict[str, Any], stack: str = "prod", project: str = "fleet") -> dict[str, str]:
    """handle -> the URN `pulumi import` gives each entry: its parent's type chain, its type, its
    logical name (as the engine's parseImportFile resolves parents by name)."""
    entries = {e["name"]: e for e in document["resources"]}
    urns: dict[str, str] = dict(document["nameTable"])

    def urn(handle: str) -> str:
        if handle not in urns:
            e = entries[handle]
            chain = e["type"]
            if "parent" in e:
                chain = urn(e["parent"]).split("::")[2] + "$" + chain
            urns[handle] = f"urn:pulumi:{stack}::{project}::{chain}::{e.get('logicalName', e['name'])}"
        return urns[handle]

    for handle in entries:
        urn(handle)
    return urns


def test_the_import_file_names_what_fleet_plan_declares(everyone: tuple[Run, dict[str, Any]]) -> None:
    migration, plan = everyone
    assert migration.code == 0, migration.err
    document = migration.document
    assert set(document) == {"nameTable", "resources"}
    plan_by_urn = {r["urn"]: r for r in plan["resources"]}
    urns = urns_of(document)
    ids = state_ids()
    imported = {}
    for entry in document["resources"]:
        declared = plan_by_urn[urns[entry["name"]]]  # the URN the stack registers
        assert (declared["type"], declared["name"]) == (entry["type"], entry.get("logicalName", entry["name"]))
        parent = entry.get("parent")
        assert declared["parent"] == (urns[parent] if parent else None)
        provider = declared["options"].get("provider")
        assert (document["nameTable"][entry["provider"]] if "provider" in entry else None) == provider
        if entry.get("component"):
            assert "id" not in entry and not declared["type"].startswith(("hcloud:", "gcp:", "cloudflare:"))
        else:
            imported[(entry["type"], declared["name"])] = entry["id"]
    # each mapped resource, with the state's id exactly
    assert imported == {EXPECTED[address]: ids[address] for address in EXPECTED}
    # every server and instance the plan declares for the machines is imported
    declared = {(r["type"], r["name"]) for r in plan["resources"] if r["machine"] in MACHINES}
    assert {(t, n) for t, n in declared if t in (SERVER, INSTANCE)} == {
        (SERVER, "cinnabar"), (SERVER, "electrum"), (SERVER, "magnetite"), (INSTANCE, "galena"), (INSTANCE, "scheelite")
    }  # fmt: skip
    assert {(t, n) for t, n in declared if t in (SERVER, INSTANCE)} <= set(imported)
    # what has no counterpart in the state is left for `pulumi up` to create
    created = {(r["type"], r["name"]) for r in plan["resources"] if r["type"] in CLOUD_TYPES} - set(imported)
    records = {("cloudflare:index/dnsRecord:DnsRecord", n) for n in ("cinnabar-aaaa", "magnetite-aaaa")}
    records |= {("cloudflare:index/dnsRecord:DnsRecord", n) for n in ("electrum-a", "electrum-aaaa")}
    assert created == {*records, ("hcloud:index/firewall:Firewall", "fleet")}


def test_components_are_created_by_the_import_and_providers_must_exist(everyone: tuple[Run, dict[str, Any]]) -> None:
    migration, plan = everyone
    document = migration.document
    components = {(e["type"], e.get("logicalName", e["name"])) for e in document["resources"] if e.get("component")}
    assert components == {
        ("fleet:index:Fleet", "fleet"),
        ("fleet:hetzner:Cloud", "fleet"),
        ("fleet:gcp:Cloud", "fleet"),
        *(("fleet:index:Machine", m) for m in MACHINES),
    }
    # handles are unique although logical names repeat (the fleet, its clouds and providers are "fleet")
    handles = [e["name"] for e in document["resources"]] + list(document["nameTable"])
    assert len(handles) == len(set(handles))
    providers = {r["urn"] for r in plan["resources"] if r["type"].startswith("pulumi:providers:")}
    assert set(document["nameTable"].values()) <= providers and len(document["nameTable"]) == 3
    # parents before children
    seen: set[str] = set()
    for entry in document["resources"]:
        assert entry.get("parent") is None or entry["parent"] in seen
        seen.add(entry["name"])
    # the explicit providers cannot be imported: the targeted `pulumi up` that makes them first
    note = migration.err.split("create them with\n  ", 1)[1].strip()
    assert note.startswith("pulumi up --stack prod --target ")
    for urn in document["nameTable"].values():
        assert f"'{urn}'" in note
    assert "fleet:index:Fleet::fleet --target" in note  # with the components above them


def test_what_cannot_be_mapped_is_listed_with_the_reason(everyone: tuple[Run, dict[str, Any]]) -> None:
    migration, _ = everyone
    lines = [line for line in migration.err.splitlines() if line.startswith("skipped ")]
    skipped = dict(line.removeprefix("skipped ").split(": ", 1) for line in lines)
    assert set(skipped) == set(SKIPPED)
    for address, reason in SKIPPED.items():
        assert reason in skipped[address]
    assert f"mapped {len(EXPECTED)} of {len(EXPECTED) + len(SKIPPED)} state objects" in migration.err
    # the state's secret values never leave it
    for value in ("not-a-real-token", "PRIVATE KEY", "ssh-ed25519"):
        assert value not in migration.out and value not in migration.err


def test_machines_the_stack_does_not_enable_are_skipped(repo: Path) -> None:
    migration, plan = _run_both(repo)  # Pulumi.prod.yaml: electrum, galena and scheelite are off
    assert migration.code == 0
    assert [n for n in MACHINES if plan["machines"][n]["enabled"]] == ["cinnabar", "magnetite"]
    for address in ("hcloud_server.electrum", 'module.gcp.google_compute_instance.node["galena"]'):
        machine = "electrum" if "electrum" in address else "galena"
        assert f"skipped {address}: machine '{machine}' is disabled in stack prod (fleet:enabled)" in migration.err
    assert (
        "skipped module.gcp.google_compute_firewall.allow_ssh: the stack declares no GCE firewall rule" in migration.err
    )
    imported = {e.get("logicalName", e["name"]) for e in migration.document["resources"] if "id" in e}
    assert imported == {"cinnabar", "magnetite", "fleet-deploy", "magnetite-ports", "cinnabar-a", "magnetite-a"}


def test_output_file_is_written_atomically(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out" / "import.json"
    args = ["migrate", "terranix", str(FIXTURE), "-o", str(target), *stack_args(repo, ENABLE_ALL)]
    done = run(capsys, *args)
    assert done.code == 0 and done.out == ""
    first = target.read_text()
    assert json.loads(first)["resources"] and f"to {target}" in done.err
    assert sorted(p.name for p in target.parent.iterdir()) == ["import.json"]  # no temp file left

    # a write that fails half-way leaves the file as it was
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    failed = run(capsys, *args[:-2])  # every machine as Pulumi.prod.yaml has it: another document
    monkeypatch.undo()
    assert failed.code == 1 and failed.err.startswith(f"error: {target}: ")
    assert target.read_text() == first
    assert sorted(p.name for p in target.parent.iterdir()) == ["import.json"]


def write_state(tmp_path: Path, state: Any) -> Path:
    path = tmp_path / "terraform.tfstate"
    path.write_text(state if isinstance(state, str) else json.dumps(state))
    return path


SERVER_STATE = {"mode": "managed", "type": "hcloud_server", "name": "cinnabar", "provider": "p"}
BAD_STATES: dict[str, tuple[Any, str]] = {
    "not json": ("{ this is not json", "not JSON (line 1, column 3"),
    "not an object": ([1, 2], "not a Terraform state"),
    "version 3": ({"version": 3, "modules": []}, "version: 3 is not supported: fleet reads state format version 4"),
    "no version": ({"resources": []}, "version: None is not supported"),
    "resources not a list": ({"version": 4, "resources": {}}, "resources: expected a list, got dict"),
    "no id": (
        {"version": 4, "resources": [{**SERVER_STATE, "instances": [{"attributes": {"name": "cinnabar"}}]}]},
        "resources[0].instances[0].attributes.id: expected a non-empty string, got nothing",
    ),
    "numeric id": (
        {"version": 4, "resources": [{**SERVER_STATE, "instances": [{"attributes": {"id": 42}}]}]},
        "resources[0].instances[0].attributes.id: expected a non-empty string, got a int",
    ),
    "no attributes": (
        {"version": 4, "resources": [{**SERVER_STATE, "instances": [{}]}]},
        "resources[0].instances[0].attributes: expected an object, got nothing",
    ),
    "no type": (
        {"version": 4, "resources": [{"mode": "managed", "name": "x", "instances": []}]},
        "resources[0].type: expected a non-empty string",
    ),
    "encrypted": (
        {"serial": 1, "lineage": "x", "meta": {}, "encrypted_data": "AAAA", "encryption_version": "v0"},
        "encrypted_data: the state is encrypted (OpenTofu state encryption); write a decrypted copy with "
        "`tofu state pull > terraform.plain.tfstate`",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_a_bad_state_file_is_an_error_naming_the_file_and_field(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, expected = BAD_STATES[case]
    monkeypatch.chdir(tmp_path)  # no Pulumi project here
    path = write_state(tmp_path, state)
    out = tmp_path / "import.json"
    out.write_text("before\n")
    # no --project: the state is refused before any stack is looked for
    done = run(capsys, "migrate", "terranix", str(path), "-o", str(out))
    assert done.code == 1
    assert done.err.startswith(f"error: {path}: {expected}"), done.err
    assert "Traceback" not in done.err and done.out == ""
    assert out.read_text() == "before\n"


def test_a_missing_or_binary_state_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = run(capsys, "migrate", "terranix", str(tmp_path / "nope.tfstate"))
    assert missing.code == 1 and missing.err.startswith(f"error: {tmp_path / 'nope.tfstate'}: ")
    binary = tmp_path / "state.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    done = run(capsys, "migrate", "terranix", str(binary))
    assert done.code == 1 and done.err.startswith(f"error: {binary}: not UTF-8 text")


def test_ambiguous_and_repeated_objects_are_skipped(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def key(name: str, id_: str) -> dict[str, Any]:
        return {"mode": "managed", "type": "hcloud_ssh_key", "name": name, "instances": [{"attributes": {"id": id_, "name": name}}]}  # fmt: skip

    server = {**SERVER_STATE, "instances": [{"attributes": {"id": "1", "name": "cinnabar"}}]}
    again = {**server, "module": "module.old", "instances": [{"attributes": {"id": "2", "name": "cinnabar"}}]}
    path = write_state(tmp_path, {"version": 4, "resources": [key("a", "11"), key("b", "12"), server, again]})
    done = run(capsys, "migrate", "terranix", str(path), *stack_args(repo))
    assert done.code == 0, done.err
    assert "skipped hcloud_ssh_key.a: ambiguous: it could be the stack's Hetzner SSH key fleet-deploy; " in done.err
    assert "so could hcloud_ssh_key.b" in done.err
    assert (
        "skipped module.old.hcloud_server.cinnabar: the stack's Hetzner server cinnabar is already mapped from "
        "hcloud_server.cinnabar" in done.err
    )
    assert [e["id"] for e in done.document["resources"] if "id" in e] == ["1"]


def test_a_state_without_anything_to_import_gives_an_empty_import_file(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_state(tmp_path, {"version": 4, "terraform_version": "1.9.1", "resources": []})
    done = run(capsys, "migrate", "terranix", str(path), *stack_args(repo))
    assert done.code == 0 and done.document == {"nameTable": {}, "resources": []}
    assert "create them with" not in done.err
