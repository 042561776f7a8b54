"""`diff_plans`: what applying one plan does to a stack at another, per machine with danger flags.

Real plans come from `make_plan` of a small project whose stack reads its own config keys (so `-c`
changes a server type, a location, protection, peers, a generator) and of the prod stack; the rules
plans cannot show yet (an installed machine, a changed closure, unknowns, ignore_changes paths,
secrets) use small hand-made documents. Hypothesis checks that a plan against itself is all `same`
and that swapping the plans swaps creates and deletes.
"""

from __future__ import annotations

import copy
import json
import shutil
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet_sdk.disko import zfs_root
from fleet_sdk.install.records import layout_digest, write_installed
from fleet_sdk.review import plan as planning
from fleet_sdk.review.diff import diff_plans, looks_secret, resource_changes
from fleet_sdk.review.paths import contains, format_path, parse_path

from .conftest import PROJECT, make_deploy_key

SERVER = "hcloud:index/server:Server"
INSTANCE = "gcp:compute/instance:Instance"
COMMAND = "command:local:Command"

DEMO_STACK = """\
from fleet_sdk.disko import zfs_root
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, HetznerHost, Machine, Role, ServiceInstance


def build(settings):
    def host(name):
        return HetznerHost(
            server_type=settings.values.get(f"demo:{name}Type", "cx22"),
            location=settings.values.get(f"demo:{name}Location", "fsn1"),
            protect=settings.object("demo:protect", False),
        )

    peers = settings.object("demo:peers", [])
    api_key = Generator(name="api-key", files=(GeneratorFile(name="key"),), script="echo k > $out/key")
    disks = zfs_root("/dev/sda", boot="bios", datasets=settings.object("demo:datasets", {}))
    machines = [
        Machine(name="ctl", host=host("ctl")),
        Machine(
            name="web",
            host=host("web"),
            disks=disks,
            generators=(api_key,) if settings.object("demo:apiKey", False) else (),
        ),
        *(Machine(name=p) for p in peers),
    ]
    roles = {"controller": Role(machines=("ctl",)), "peer": Role(machines=("web", *peers))}
    zt = ServiceInstance(name="zt", module="zerotier", roles=roles)
    return Fleet(name="demo", machines=tuple(machines), instances=(zt,))
"""


def write_demo(root: Path, stack: str = DEMO_STACK) -> Path:
    """A project `demo` (stack `dev`, the fleet repository itself) whose stack reads `demo:` keys:
    `<m>Type`, `<m>Location` for ctl and web (Hetzner), `protect`, `peers`, `apiKey` (a generator
    of web), `datasets` (more ZFS datasets on web's disk)."""
    (root / "stacks").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (root / "Pulumi.dev.yaml").write_text("config:\n  fleet:flake: .\n")
    (root / "stacks" / "dev.py").write_text(textwrap.dedent(stack))
    make_deploy_key(root)
    return root


class Demo:
    """Plans of the demo project, each made once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @cache  # noqa: B019 (one per module)
    def __call__(self, *overrides: str) -> dict[str, Any]:
        return planning.make_plan(self.root, "dev", list(overrides)).document


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo project, web installed (by fleet_sdk) with the layout it has without `demo:datasets`."""
    root = write_demo(tmp_path_factory.mktemp("demo") / "project")
    write_installed(root, "web", layout_digest(zfs_root("/dev/sda", boot="bios").render()), "SHA256:fp")
    return Demo(root)


def change(diff: dict[str, Any], machine: str | None, type_: str, name: str) -> dict[str, Any]:
    changes = diff["shared"] if machine is None else diff["machines"][machine]["changes"]
    return next(c for c in changes if c["type"] == type_ and c["name"] == name)


# (base overrides, head overrides, {machine: (status, danger)}, (machine, type, name, op))
REAL_CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...], dict[str, tuple[str, list[str]]], tuple[str, ...]]] = {
    "server type: update and reboot": (
        (),
        ("demo:webType=cx32",),
        {"web": ("changed", ["reboot"]), "ctl": ("unchanged", [])},
        ("web", SERVER, "web", "update"),
    ),
    "location: replace and wipe": (
        (),
        ("demo:webLocation=nbg1",),
        {"web": ("changed", ["wipe"]), "ctl": ("unchanged", [])},
        ("web", SERVER, "web", "replace"),
    ),
    "protected server replaced: blocked": (
        ("demo:protect=true",),
        ("demo:protect=true", "demo:ctlLocation=hel1"),
        # web's admission runs on the controller, at its new address (known after apply): an update
        {"ctl": ("changed", ["blocked"]), "web": ("changed", [])},
        ("ctl", SERVER, "ctl", "replace"),
    ),
    "disk layout of an installed machine: wipe": (
        (),
        ('demo:datasets={"root/data": "/data"}',),
        {"web": ("changed", ["wipe"]), "ctl": ("unchanged", [])},
        ("web", SERVER, "web", "same"),
    ),
    "new generator: secrets": (
        (),
        ("demo:apiKey=true",),
        # the demo repository holds no ZeroTier vars, so the admission's ids (its triggers) are known
        # only once the re-run vars step printed them: possibly a new member (tests/test_revocation.py
        # shows a repository with them previews no network change)
        {"web": ("changed", ["secrets", "network"]), "ctl": ("unchanged", [])},
        ("web", COMMAND, "web-vars", "replace"),
    ),
    "new peer: network on it and the controller": (
        (),
        ('demo:peers=["p1"]',),
        {"p1": ("added", ["secrets", "network"]), "ctl": ("changed", ["network"]), "web": ("unchanged", [])},
        ("p1", COMMAND, "zt-admit-p1", "create"),
    ),
    "peer removed: network on the controller": (
        ('demo:peers=["p1"]',),
        (),
        {"p1": ("removed", ["network"]), "ctl": ("changed", ["network"]), "web": ("unchanged", [])},
        ("p1", COMMAND, "zt-admit-p1", "delete"),
    ),
}


@pytest.mark.parametrize("case", sorted(REAL_CASES))
def test_real_plans(case: str, demo: Demo) -> None:
    base, head, machines, (machine, type_, name, op) = REAL_CASES[case]
    diff = diff_plans(demo(*base), demo(*head))
    assert {m: (diff["machines"][m]["status"], diff["machines"][m]["danger"]) for m in machines} == machines
    if op == "same":
        assert all(c["name"] != name for c in diff["machines"][machine]["changes"])
    else:
        assert change(diff, machine, type_, name)["op"] == op


def test_server_type_change_names_the_path_and_values(demo: Demo) -> None:
    server = change(diff_plans(demo(), demo("demo:webType=cx32")), "web", SERVER, "web")
    assert server["paths"] == [{"path": "serverType", "kind": "update", "old": "cx22", "new": "cx32"}]
    assert server["replace_reasons"] == [] and server["protect"] is False


def test_location_change_replaces_the_server_and_reruns_its_install(demo: Demo) -> None:
    diff = diff_plans(demo(), demo("demo:webLocation=nbg1"))
    server = change(diff, "web", SERVER, "web")
    assert server["replace_reasons"] == ["location"]
    assert server["paths"] == [{"path": "location", "kind": "update-replace", "old": "fsn1", "new": "nbg1"}]
    # the install's trigger is the server's id: known after apply, and replace_on_changes names it
    install = change(diff, "web", COMMAND, "web-install")
    assert (install["op"], install["paths"], install["replace_reasons"]) == ("replace", [], ["triggers[0]"])
    assert "triggers[0]" in install["unknown"]
    # the admission waits on the install, but nothing it takes changes: the controller's address
    # (its server is kept) and the member's identity (in vars) — Pulumi leaves it alone
    assert "zt-admit-web" not in {c["name"] for c in diff["machines"]["web"]["changes"]}


def test_protected_replace_is_blocked_not_wiped(demo: Demo) -> None:
    diff = diff_plans(demo("demo:protect=true"), demo("demo:protect=true", "demo:ctlLocation=hel1"))
    server = change(diff, "ctl", SERVER, "ctl")
    assert server["protect"] is True and server["replace_reasons"] == ["location"]
    assert "wipe" not in diff["machines"]["ctl"]["danger"]


def test_disk_layout_change_names_both_digests(demo: Demo) -> None:
    base, head = demo(), demo('demo:datasets={"root/data": "/data"}')
    disk = diff_plans(base, head)["machines"]["web"]["disk"]
    assert disk["changed"] is True and disk["digest"]["old"] == base["machines"]["web"]["install"]["installed_layout"]
    assert disk["digest"]["new"] == head["machines"]["web"]["disko"]["digest"] != disk["digest"]["old"]


def test_new_generator_lists_what_will_be_generated(demo: Demo) -> None:
    entry = diff_plans(demo(), demo("demo:apiKey=true"))["machines"]["web"]
    assert "api-key" in entry["secrets"]["regenerate"]
    assert change({"machines": {"web": entry}}, "web", COMMAND, "web-vars")["replace_reasons"] == ["triggers[0]"]


def test_new_peer_joins_and_the_controller_admits_it(demo: Demo) -> None:
    diff = diff_plans(demo(), demo('demo:peers=["p1"]'))
    assert diff["machines"]["p1"]["zerotier"] == {"joins": ["zt"], "leaves": []}
    assert diff["machines"]["ctl"]["zerotier"] == {"joins": ["zt/p1"], "leaves": []}
    assert change(diff, "ctl", COMMAND, "zt-controller")["op"] == "replace"  # its member list changed
    assert diff["outputs"] == {"added": ["zerotier.zt.members.p1"], "removed": [], "changed": []}


def test_checkout_specific_environment_is_ignored(demo: Demo, tmp_path: Path) -> None:
    # the same project in another folder: every step's environment (paths) differs, and is ignored
    other = shutil.copytree(demo.root, tmp_path / "elsewhere")
    moved = planning.make_plan(other, "dev").document
    envs = {json.dumps(r["inputs"].get("environment")) for r in demo()["resources"] + moved["resources"]}
    assert len(envs) > 2  # the paths really differ
    diff = diff_plans(demo(), moved)
    assert diff["summary"]["same"] == len(moved["resources"]) and not diff["shared"]
    assert {m["status"] for m in diff["machines"].values()} == {"unchanged"}


def prod_plan(enabled: list[str] | None = None) -> dict[str, Any]:
    overrides = [f"fleet:enabled={json.dumps(enabled)}"] if enabled is not None else []
    return planning.make_plan(PROJECT, "prod", overrides).document


def test_prod_stack_disabling_a_protected_server_is_blocked_and_enabling_one_creates() -> None:
    base = prod_plan()
    enabled = ["cinnabar", "electrum", "pyrite", "blackphos", "stibnite", "rosegold", "argentum"]
    diff = diff_plans(base, prod_plan(enabled))  # magnetite off, electrum on
    magnetite, electrum = diff["machines"]["magnetite"], diff["machines"]["electrum"]
    # blocked, and its admission's delete would deauthorize it
    assert magnetite["danger"] == ["blocked", "network"]
    assert change(diff, "magnetite", SERVER, "magnetite")["op"] == "delete"
    assert electrum["status"] == "changed" and "wipe" not in electrum["danger"]
    assert change(diff, "electrum", SERVER, "electrum")["op"] == "create"
    # and the controller's step authorises the new member list
    assert {m for m, e in diff["machines"].items() if e["status"] != "unchanged"} == {
        "magnetite",
        "electrum",
        "cinnabar",
    }
    assert diff_plans(base, base)["summary"]["same"] == len(base["resources"])


# --- hand-made documents: rules the stacks here cannot show ---


def machine(**fields: Any) -> dict[str, Any]:
    return {"class": "nixos", "enabled": True, "tags": [], "target_host": None, "resources": []} | fields


def resource(name: str, type_: str = SERVER, owner: str | None = "m", **fields: Any) -> dict[str, Any]:
    options = {"protect": False, "ignore_changes": [], "replace_on_changes": []} | fields.pop("options", {})
    urn = f"urn:pulumi:s::p::fleet:index:Machine${type_}::{name}"
    return {
        "urn": urn,
        "type": type_,
        "name": name,
        "parent": None,
        "machine": owner,
        "dependencies": [],
        "inputs": {},
        "options": options,
    } | fields


def document(machines: dict[str, Any], resources: list[dict[str, Any]], outputs: Any = None) -> dict[str, Any]:
    return {"project": "p", "stack": "s", "machines": machines, "resources": resources, "outputs": outputs or {}}


def one(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The diff of two one-machine documents: (entry of m, its only change or {})."""
    entry = diff_plans(old, new)["machines"]["m"]
    return entry, (entry["changes"][0] if entry["changes"] else {})


INSTALLED = {"layout": "sha256:a", "installed_layout": "sha256:a", "reinstall_required": False}
NOT_INSTALLED = {"layout": "sha256:a", "installed_layout": None, "reinstall_required": False}


def test_disk_layout_change_wipes_an_installed_machine_only() -> None:
    old = document({"m": machine(disko={"digest": "sha256:a", "partitions": []}, install=INSTALLED)}, [])
    new = copy.deepcopy(old)
    new["machines"]["m"]["disko"]["digest"] = "sha256:b"
    entry, _ = one(old, new)
    assert entry["danger"] == ["wipe"] and entry["status"] == "changed"
    assert entry["disk"] == {"changed": True, "digest": {"old": "sha256:a", "new": "sha256:b"}}
    for side in (old, new):
        side["machines"]["m"]["install"] = NOT_INSTALLED
    entry, _ = one(old, new)
    assert entry["danger"] == [] and entry["disk"]["changed"] is True and entry["status"] == "changed"


def test_changed_closure_is_system_and_an_unknown_one_is_null() -> None:
    def doc(system: dict[str, Any]) -> dict[str, Any]:
        return document({"m": machine(system=system)}, [])

    a, b = (
        {"drvPath": "/nix/store/a.drv", "outPath": "/nix/store/a"},
        {"drvPath": "/nix/store/b.drv", "outPath": "/nix/store/b"},
    )
    entry, _ = one(doc(a), doc(b))
    assert entry["danger"] == ["system"]
    assert entry["system"] == {
        "changed": True,
        "drvPath": {"old": a["drvPath"], "new": b["drvPath"]},
        "outPath": {"old": a["outPath"], "new": b["outPath"]},
    }
    entry, _ = one(doc(a), doc({"drvPath": "/nix/store/c.drv", "outPath": a["outPath"]}))
    assert entry["system"]["changed"] is False and entry["danger"] == []  # a rebuild of the same output
    entry, _ = one(doc({"unknown": "no flake.nix"}), doc(b))
    assert entry["system"]["changed"] is None and entry["danger"] == [] and entry["status"] == "unchanged"


def test_unknowns_on_both_sides_are_no_change_unless_a_dependency_is_recreated() -> None:
    dep = resource("dep", SERVER, inputs={"location": "fsn1"})
    step = resource(
        "step", COMMAND, inputs={"create": "<computed>", "triggers": ["<computed>"]}, dependencies=[dep["urn"]]
    )
    step["options"]["replace_on_changes"] = ["triggers[*]"]
    old = document({"m": machine()}, [dep, step])
    assert diff_plans(old, copy.deepcopy(old))["summary"]["same"] == 2
    new = copy.deepcopy(old)
    new["resources"][0]["inputs"]["location"] = "nbg1"  # the dependency is replaced
    got = change(diff_plans(old, new), "m", COMMAND, "step")
    assert (got["op"], got["unknown"], got["replace_reasons"], got["paths"]) == (
        "replace",
        ["create", "triggers[0]"],
        ["triggers[0]"],
        [],
    )
    new["resources"][0]["inputs"]["location"] = "fsn1"
    new["resources"][0]["inputs"]["labels"] = {"a": "b"}  # only updated: the step's unknowns stay the same
    assert change(diff_plans(old, new), "m", SERVER, "dep")["op"] == "update"
    assert all(c["name"] != "step" for c in diff_plans(old, new)["machines"]["m"]["changes"])


@pytest.mark.parametrize(
    ("ignored", "inputs", "changed"),
    [
        (["environment"], {"environment": {"A": "2"}, "x": 1}, False),
        (["environment.A"], {"environment": {"A": "2", "B": "1"}, "x": 1}, True),
        (["environment.A"], {"environment": {"A": "2"}, "x": 1}, False),
        (["tags[*]"], {"environment": {"A": "1"}, "x": 1, "tags": ["z", "y"]}, False),
        (["tags[1]"], {"environment": {"A": "1"}, "x": 1, "tags": ["z", "y"]}, True),
        (['labels["fleet.io/x"]'], {"environment": {"A": "1"}, "x": 1, "labels": {"fleet.io/x": "2"}}, False),
        ([], {"environment": {"A": "1"}, "x": 2}, True),
    ],
)
def test_ignore_changes_paths_are_no_change(ignored: list[str], inputs: dict[str, Any], changed: bool) -> None:
    base = {"environment": {"A": "1"}, "x": 1, "tags": ["x", "y"], "labels": {"fleet.io/x": "1"}}
    old = document({"m": machine()}, [resource("r", inputs=base)])
    new = document({"m": machine()}, [resource("r", inputs=base | inputs, options={"ignore_changes": ignored})])
    _, got = one(old, new)
    assert bool(got) is changed


def test_protect_only_change_is_same() -> None:
    old = document({"m": machine()}, [resource("r", inputs={"a": 1})])
    new = document({"m": machine()}, [resource("r", inputs={"a": 1}, options={"protect": True})])
    entry, got = one(old, new)
    assert got == {} and entry["status"] == "unchanged"


def test_gce_machine_type_reboots_and_zone_or_a_new_boot_disk_replaces() -> None:
    inputs = {"machineType": "e2-standard-2", "zone": "us-central1-b", "networkInterfaces": [{"network": "default"}]}
    old = document({"m": machine()}, [resource("vm", INSTANCE, inputs=inputs)])

    def with_(**changed: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return one(old, document({"m": machine()}, [resource("vm", INSTANCE, inputs=inputs | changed)]))

    entry, got = with_(machineType="e2-standard-4")
    assert (entry["danger"], got["op"]) == (["reboot"], "update")
    entry, got = with_(zone="us-central1-c")
    assert (entry["danger"], got["op"], got["replace_reasons"]) == (["wipe"], "replace", ["zone"])
    _, got = with_(bootDisk={"initializeParams": {"image": "debian-12"}})
    assert got["paths"][0]["kind"] == "add-replace"
    _, got = with_(networkInterfaces=[{"network": "default"}, {"network": "other"}])
    assert (got["op"], got["replace_reasons"]) == ("replace", ["networkInterfaces[1]"])
    entry, got = with_(networkInterfaces=[{"network": "other"}])
    assert (entry["danger"], got["op"]) == (["reboot"], "update")


def test_secret_values_stay_secret() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"
    old = document(
        {"m": machine()}, [resource("r", inputs={"token": "old-plain", "data": "[secret]", "k": key, "x": 1})]
    )
    new = document({"m": machine()}, [resource("r", inputs={"token": "new-plain", "data": "plain", "k": "y", "x": 2})])
    _, got = one(old, new)
    shown = {p["path"]: (p["old"], p["new"]) for p in got["paths"]}
    assert shown == {
        "data": ("[secret]", "[secret]"),
        "k": ("[secret]", "[secret]"),
        "token": ("[secret]", "[secret]"),
        "x": (1, 2),
    }
    assert "plain" not in json.dumps(got) and "BEGIN" not in json.dumps(got)
    assert looks_secret(("a",), {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"})


def test_a_resource_under_another_parent_is_noted_as_moved() -> None:
    old_r = resource("web", SERVER)
    new_r = resource(
        "web", SERVER, urn="urn:pulumi:s::p::fleet:index:Fleet$fleet:index:Machine$hcloud:index/server:Server::web"
    )
    diff = diff_plans(document({"m": machine()}, [old_r]), document({"m": machine()}, [new_r]))
    ops = {c["op"]: c["note"] for c in diff["machines"]["m"]["changes"]}
    assert set(ops) == {"create", "delete"} and all("moved?" in n and "alias" in n for n in ops.values())
    assert new_r["urn"] in ops["delete"] and old_r["urn"] in ops["create"]


def test_shared_and_subject_steps() -> None:
    shared = resource("fw", "hcloud:index/firewall:Firewall", owner=None, inputs={"rules": []})
    admit = resource(
        "admit-m",
        COMMAND,
        owner=None,
        subject="m",
        inputs={"triggers": ["a"]},
        options={"replace_on_changes": ["triggers[*]"]},
    )
    admit["urn"] = "urn:pulumi:s::p::fleet:index:Fleet$fleet:zerotier:Network$command:local:Command::admit-m"
    old = document({"m": machine()}, [shared, admit])
    new = copy.deepcopy(old)
    new["resources"][0]["inputs"]["rules"] = [{"port": "22"}]
    new["resources"][1]["inputs"]["triggers"] = ["b"]
    diff = diff_plans(old, new)
    assert [c["name"] for c in diff["shared"]] == ["fw"]
    assert diff["machines"]["m"]["danger"] == ["network"] and diff["machines"]["m"]["changes"][0]["op"] == "replace"


def test_a_schema_1_document_leaves_the_new_fields_unknown() -> None:
    new = document(
        {
            "m": machine(
                disko={"digest": "sha256:b", "partitions": []},
                zerotier={"zt": "peer"},
                generators=[{"name": "g", "share": False, "stored": False}],
            )
        },
        [],
    )
    old = document({"m": machine()}, [])
    entry, _ = one(old, new)
    assert entry["disk"]["changed"] is None and entry["zerotier"] == {"joins": [], "leaves": []}
    assert entry["danger"] == [] and entry["status"] == "unchanged"


def test_outputs_and_document_digests() -> None:
    old = document({}, [], {"a": 1, "b": {"c": 2}, "gone": True})
    new = document({}, [], {"a": 1, "b": {"c": 3}, "new": "<computed>"})
    diff = diff_plans(old, new, base={"ref": "abc"})
    assert diff["outputs"] == {"added": ["new"], "removed": ["gone"], "changed": ["b.c"]}
    assert diff["base"]["ref"] == "abc" and diff["base"]["digest"].startswith("sha256:") and diff["head"]["ref"] is None
    assert diff["base"]["digest"] != diff["head"]["digest"]
    keys = {"schema", "project", "stack", "base", "head", "summary", "machines", "shared", "outputs", "cost"}
    assert set(diff) == keys


def test_property_paths_as_pulumi_writes_and_matches_them() -> None:
    assert format_path(("a", 0, "b")) == "a[0].b" and format_path(("labels", "x.y/z")) == 'labels["x.y/z"]'
    for text in ("a[0].b", 'labels["x.y/z"]', "triggers[*]", "*"):
        assert format_path(parse_path(text)) == text
    assert contains(parse_path("triggers[*]"), ("triggers", 0)) and contains(
        parse_path("triggers[*]"), ("triggers", 3, "x")
    )
    assert not contains(parse_path("triggers[*]"), ("triggers",)) and not contains(parse_path("a.b"), ("a", "c"))


# --- properties ---

NAMES = ("m0", "m1", "m2")
TYPES = (SERVER, COMMAND, INSTANCE, "hcloud:index/firewall:Firewall")
leaf = st.one_of(
    st.integers(-3, 3), st.booleans(), st.sampled_from(["a", "b", "<computed>", "[secret]", "fsn1", "nbg1"])
)
values = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["location", "serverType", "x", "triggers", "zone"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    """A plan document over a small pool of URNs, so two draws share some resources and differ in others."""
    machines = {
        n: machine(zerotier=draw(st.sampled_from([{}, {"zt": "peer"}, {"zt": "controller"}])))
        for n in draw(st.sets(st.sampled_from(NAMES)))
    }
    resources: list[dict[str, Any]] = []
    for i in sorted(draw(st.sets(st.integers(0, 7), max_size=6))):
        type_ = TYPES[i % len(TYPES)]
        inputs = draw(
            st.dictionaries(
                st.sampled_from(["location", "serverType", "triggers", "environment", "zone"]), values, max_size=4
            )
        )
        options = {
            "protect": draw(st.booleans()),
            "ignore_changes": draw(st.sampled_from([[], ["environment"], ["triggers[*]"]])),
            "replace_on_changes": draw(st.sampled_from([[], ["triggers[*]"]])),
        }
        deps = [r["urn"] for r in resources if draw(st.booleans())]
        owner = draw(st.sampled_from([None, *NAMES]))
        resources.append(resource(f"r{i}", type_, owner=owner, inputs=inputs, options=options, dependencies=deps))
    return document(machines, resources, draw(st.dictionaries(st.sampled_from(["a", "b"]), values, max_size=2)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans())
def test_a_plan_against_itself_is_all_same(plan: dict[str, Any]) -> None:
    diff = diff_plans(plan, copy.deepcopy(plan))
    assert diff["summary"] == {"create": 0, "update": 0, "replace": 0, "delete": 0, "same": len(plan["resources"])}
    assert all(
        m["status"] == "unchanged" and m["danger"] == [] and m["changes"] == [] for m in diff["machines"].values()
    )
    assert diff["shared"] == [] and diff["outputs"] == {"added": [], "removed": [], "changed": []}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans(), plans())
def test_swapping_the_plans_swaps_creates_and_deletes(a: dict[str, Any], b: dict[str, Any]) -> None:
    def ops(old: dict[str, Any], new: dict[str, Any], op: str) -> set[str]:
        return {c.urn for c in resource_changes(old, new) if c.op == op}

    assert ops(a, b, "create") == ops(b, a, "delete") and ops(a, b, "delete") == ops(b, a, "create")
    forward, backward = diff_plans(a, b), diff_plans(b, a)
    assert forward["outputs"]["added"] == backward["outputs"]["removed"]
    added = {m for m, e in forward["machines"].items() if e["status"] == "added"}
    assert added == {m for m, e in backward["machines"].items() if e["status"] == "removed"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans(), values)
def test_a_change_under_an_ignored_path_is_never_seen(plan: dict[str, Any], value: Any) -> None:
    new = copy.deepcopy(plan)
    for r in new["resources"]:
        r["options"]["ignore_changes"] = ["environment"]
        r["inputs"]["environment"] = value
    for r in plan["resources"]:
        r["options"]["ignore_changes"] = ["environment"]
    diff = diff_plans(plan, new)
    assert diff["summary"]["same"] == len(plan["resources"])
