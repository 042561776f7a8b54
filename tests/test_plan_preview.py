"""`fleet plan --preview FILE`: Pulumi's own preview (a `--json` digest or an `--event-log`) read without
its values, and laid over the offline diff so that Pulumi's ops win and every disagreement shows."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.errors import ConfigError
from fleet_sdk.graph import deploy_fleet
from fleet_sdk.review.diff import diff_plans
from fleet_sdk.review.plan import plan_document
from fleet_sdk.review.preview import OPS, PreviewStep, PulumiPreview, apply_preview, read_preview
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import recorded_graph

from .conftest import prod_everyone

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pulumi"
DIGEST, EVENTS = FIXTURES / "preview-digest.json", FIXTURES / "preview-events.jsonl"
P = "urn:pulumi:prod::fleet::"
M = P + "fleet:index:Fleet$fleet:index:Machine"
CIN = M + "$hcloud:index/server:Server::cinnabar"
MAG = M + "$hcloud:index/server:Server::magnetite"
PYR = P + "fleet:index:Fleet$fleet:index:Machine::pyrite"
SCH = M + "$command:local:Command::scheelite-vars"
GAL = M + "$command:local:Command::galena-vars"
ZT = P + "fleet:index:Fleet$fleet:zerotier:Network$command:local:Command::zerotier-admit-newbox"
FW = P + "fleet:index:Fleet$fleet:hetzner:Cloud$hcloud:index/firewall:Firewall::extra"
SERVER = "hcloud:index/server:Server"


def secrets_in_fixtures() -> set[str]:
    found = {s for f in (DIGEST, EVENTS) for s in re.findall(r"SECRET-[a-z0-9-]+", f.read_text())}
    assert len(found) >= 15  # the scan below would prove nothing without them
    return found


def change(urn: str, op: str, *, protect: bool = False, reasons: list[str] | None = None) -> dict[str, Any]:
    qualified, name = urn.split("::")[2:4]
    return {
        "urn": urn,
        "type": qualified.split("$")[-1],
        "name": name,
        "op": op,
        "protect": protect,
        "paths": [],
        "replace_reasons": reasons or [],
        "unknown": [],
    }


def entry(status: str, danger: list[str], *changes: dict[str, Any], disk_changed: bool = False) -> dict[str, Any]:
    return {
        "status": status,
        "danger": danger,
        "changes": list(changes),
        "secrets": {"regenerate": []},
        "disk": {"changed": disk_changed, "digest": {"old": None, "new": None}},
        "system": {"changed": None, "drvPath": {"old": None, "new": None}, "outPath": {"old": None, "new": None}},
        "zerotier": {"joins": [], "leaves": []},
    }


def offline_diff() -> dict[str, Any]:
    """The offline estimate the fixtures are laid over, in preview.md §6.2's shape: it thinks
    cinnabar's server is replaced (Pulumi: updated) and magnetite's updated (Pulumi: replaced)."""
    return {
        "schema": "fleet-plan-diff/1",
        "project": "fleet",
        "stack": "prod",
        "base": {"ref": "abc1234", "digest": "sha256:aa"},
        "head": {"ref": "def5678", "digest": "sha256:bb"},
        "summary": {"create": 1, "update": 2, "replace": 1, "delete": 1, "same": 20},
        "machines": {
            "cinnabar": entry(
                "changed", ["blocked", "reboot"], change(CIN, "replace", protect=True, reasons=["location"])
            ),
            "magnetite": entry("changed", ["reboot"], change(MAG, "update", protect=True)),
            "pyrite": entry("unchanged", []),  # the diff lists no resource that is the same offline
            "scheelite": entry("changed", [], change(SCH, "delete")),
            "galena": entry("changed", ["secrets"], change(GAL, "update")),
        },
        "shared": [change(ZT, "create")],
        "outputs": {"added": [], "removed": [], "changed": []},
    }


@pytest.mark.parametrize(("path", "source"), [(DIGEST, "digest"), (EVENTS, "event-log")])
def test_both_formats_read_to_the_same_steps(path: Path, source: str) -> None:
    preview = read_preview(path)
    assert preview.source == source
    assert {urn: s.op for urn, s in preview.steps.items()} == {
        CIN: "update",
        MAG: "replace",
        PYR: "same",
        SCH: "delete",
        ZT: "create",
        FW: "create",
        P + "pulumi:providers:command::default_1_0_0": "same",
        P + "pulumi:pulumi:Stack::fleet-prod": "same",
    }
    magnetite = preview.steps[MAG]
    assert magnetite.type == SERVER and magnetite.replace_reasons == ("location",)
    assert magnetite.paths == (("location", "update-replace"),) and magnetite.unknown == ("ipv4Address",)
    assert preview.steps[CIN].paths == (("serverType", "update"),) and preview.steps[CIN].replace_reasons == ()
    assert preview.steps[ZT].unknown == ("triggers",) and preview.steps[ZT].type == "command:local:Command"
    assert dict(preview.summary) == {"create": 2, "delete": 1, "replace": 1, "same": 2, "update": 1}
    assert [(d.severity, d.urn, d.message) for d in preview.diagnostics] == [
        ("warning", CIN, "serverType change powers the server off")
    ]


def test_the_event_log_folds_the_replacement_steps_into_one_replace() -> None:
    step = read_preview(EVENTS).steps[MAG]
    assert step.pulumi_ops == ("create-replacement", "replace", "delete-replaced") and step.op == "replace"


def test_pulumis_ops_map_to_the_five_of_the_diff() -> None:
    assert set(OPS.values()) == {"create", "update", "replace", "delete", "same"}
    assert {op for op, ours in OPS.items() if ours == "replace"} >= {
        "replace",
        "create-replacement",
        "delete-replaced",
    }
    assert (OPS["read"], OPS["refresh"], OPS["import"], OPS["discard"]) == ("same", "same", "create", "delete")


def write_events(tmp_path: Path, *metadata: dict[str, Any]) -> Path:
    path = tmp_path / "ev.jsonl"
    lines = [{"sequence": i, "timestamp": 0, "resourcePreEvent": {"metadata": m}} for i, m in enumerate(metadata)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_refresh_then_an_update_is_an_update_and_unknown_ops_show_as_updates(tmp_path: Path) -> None:
    path = write_events(
        tmp_path,
        {"op": "refresh", "urn": CIN, "type": SERVER},
        {"op": "update", "urn": CIN, "type": SERVER, "diffs": ["serverType", "labels"]},
        {"op": "teleport", "urn": MAG, "type": SERVER},
    )
    steps = read_preview(path).steps
    assert steps[CIN].op == "update" and steps[CIN].paths == (("labels", "update"), ("serverType", "update"))
    assert steps[MAG].op == "update" and steps[MAG].pulumi_ops == ("teleport",)
    assert dict(read_preview(path).summary) == {"update": 2}  # no summaryEvent: counted from the steps


def test_apply_preview_lets_pulumi_win_and_lists_each_disagreement() -> None:
    diff = offline_diff()
    before = json.dumps(diff, sort_keys=True)
    out = apply_preview(diff, read_preview(DIGEST))
    assert json.dumps(diff, sort_keys=True) == before  # a new dict; the input is untouched
    cinnabar, magnetite = out["machines"]["cinnabar"], out["machines"]["magnetite"]
    assert cinnabar["changes"][0].items() >= {"op": "update", "pulumi_op": "update", "offline_op": "replace"}.items()
    assert cinnabar["changes"][0]["replace_reasons"] == [] and cinnabar["danger"] == ["reboot"]  # serverType
    assert magnetite["changes"][0]["replace_reasons"] == ["location"]
    assert magnetite["changes"][0]["pulumi_paths"] == [{"path": "location", "kind": "update-replace"}]
    assert magnetite["changes"][0]["pulumi_unknown"] == ["ipv4Address"]
    assert magnetite["danger"] == ["blocked"]  # a protected server replaced: the engine refuses
    preview = out["preview"]
    assert preview["source"] == "digest"
    assert preview["disagreements"] == [
        {"urn": CIN, "machine": "cinnabar", "offline": "replace", "pulumi": "update"},
        {"urn": MAG, "machine": "magnetite", "offline": "update", "pulumi": "replace"},
    ]
    assert out["summary"] == {"create": 1, "update": 2, "replace": 1, "delete": 1, "same": 20}  # one each way
    assert preview["unmatched"] == [{"urn": FW, "type": "hcloud:index/firewall:Firewall", "pulumi": "create"}]
    assert preview["unreported"] == [{"urn": GAL, "machine": "galena", "offline": "update"}]
    assert (
        out["machines"]["galena"]["changes"][0]["op"] == "update"
        and "pulumi_op" not in out["machines"]["galena"]["changes"][0]
    )
    assert out["shared"][0]["pulumi_op"] == "create" and "offline_op" not in out["shared"][0]
    assert out["machines"]["pyrite"]["status"] == "unchanged"
    assert preview["diagnostics"] == [
        {"severity": "warning", "urn": CIN, "message": "serverType change powers the server off"}
    ]
    assert apply_preview(diff, read_preview(EVENTS)) == out | {"preview": preview | {"source": "event-log"}}


def step(urn: str, op: str, *reasons: str) -> PreviewStep:
    return PreviewStep(urn, urn.split("::")[2].split("$")[-1], op, (op,), reasons, (), ())


def test_danger_is_recomputed_where_pulumi_changed_the_op() -> None:
    diff = offline_diff()
    diff["machines"]["electrum"] = entry(
        "changed",
        ["wipe"],
        change(CIN.replace("cinnabar", "electrum"), "replace", reasons=["image"]),
        disk_changed=True,
    )
    diff["machines"]["pyrite"]["changes"].append(
        change(M + "$command:local:Command::pyrite-vars", "update", protect=True)
    )
    preview = PulumiPreview(
        "digest",
        {
            CIN.replace("cinnabar", "electrum"): step(CIN.replace("cinnabar", "electrum"), "update"),
            M + "$command:local:Command::pyrite-vars": step(M + "$command:local:Command::pyrite-vars", "delete"),
            SCH: step(SCH, "same"),
        },
        {},
    )
    out = apply_preview(diff, preview)
    assert out["machines"]["electrum"]["danger"] == ["wipe"]  # the disk layout still wipes it
    assert out["machines"]["pyrite"]["danger"] == ["blocked"] and out["machines"]["pyrite"]["status"] == "changed"
    assert out["machines"]["scheelite"]["changes"][0]["op"] == "same"
    assert out["machines"]["scheelite"]["danger"] == [] and out["machines"]["scheelite"]["status"] == "unchanged"
    assert out["machines"]["cinnabar"]["danger"] == ["blocked", "reboot"]  # Pulumi said nothing of it
    assert CIN in {u["urn"] for u in out["preview"]["unreported"]}


ZTP = P + "fleet:index:Fleet$fleet:zerotier:Network$command:local:Command::zerotier-admit-pyrite"
ELSEWHERE = P + "fleet:index:Fleet$fleet:index:Machine$command:local:Command::someone-elses"


def planned(urn: str, machine: str | None, subject: str | None = None, protect: bool = False) -> dict[str, Any]:
    qualified, name = urn.split("::")[2:4]
    options = {"protect": protect}
    return {
        "urn": urn,
        "type": qualified.split("$")[-1],
        "name": name,
        "machine": machine,
        "subject": subject,
        "options": options,
    }


def test_with_the_plan_pulumis_changes_to_offline_sames_join_their_machine() -> None:
    diff = offline_diff()
    plan = {
        "resources": [
            planned(PYR, "pyrite"),
            planned(ZTP, None, "pyrite"),
            planned(CIN, "cinnabar", protect=True),
            planned(MAG, "magnetite", protect=True),
            planned(GAL, "galena"),
            planned(ZT, None),
        ]
    }
    preview = PulumiPreview(
        "event-log",
        {
            PYR: step(PYR, "same"),
            ZTP: step(ZTP, "replace", "triggers"),
            FW: step(FW, "create"),
            ELSEWHERE: step(ELSEWHERE, "same"),
            P + "pulumi:pulumi:Stack::fleet-prod": step(P + "pulumi:pulumi:Stack::fleet-prod", "same"),
        },
        {"replace": 1, "create": 1, "same": 3},
    )
    out = apply_preview(diff, preview, plan=plan)
    pyrite = out["machines"]["pyrite"]
    assert [c["urn"] for c in pyrite["changes"]] == [ZTP]
    expected = {"op": "replace", "offline_op": "same", "pulumi_op": "replace", "replace_reasons": ["triggers"]}
    assert pyrite["changes"][0].items() >= expected.items()
    assert pyrite["status"] == "changed" and pyrite["danger"] == ["network"]  # a ZeroTier step replaced
    assert out["preview"]["disagreements"] == [
        {"urn": ZTP, "machine": "pyrite", "offline": "same", "pulumi": "replace"}
    ]
    assert (out["summary"]["same"], out["summary"]["replace"]) == (19, 2)
    # the stack's root never matches; another resource Pulumi has and the plan lacks does, same or not
    assert out["preview"]["unmatched"] == [
        {"urn": FW, "type": "hcloud:index/firewall:Firewall", "pulumi": "create"},
        {"urn": ELSEWHERE, "type": "command:local:Command", "pulumi": "same"},
    ]
    without = apply_preview(diff, preview)
    assert without["machines"]["pyrite"]["changes"] == [] and without["preview"]["disagreements"] == []
    assert [u["urn"] for u in without["preview"]["unmatched"]] == [FW, ZTP]  # Pulumi's sames agree


def test_on_a_real_diff_of_two_recorded_plans(settings: StackSettings, tmp_path: Path) -> None:
    graph = recorded_graph(lambda: deploy_fleet(prod_everyone(), settings), preview=True, stack="prod")
    old = plan_document(prod_everyone(), graph)
    new = copy.deepcopy(old)
    servers = {r["name"]: r for r in new["resources"] if r["type"] == SERVER}
    servers["cinnabar"]["inputs"]["serverType"] = "cx53"
    diff = diff_plans(old, new)
    cinnabar_server, magnetite_server = servers["cinnabar"]["urn"], servers["magnetite"]["urn"]
    assert [c["urn"] for c in diff["machines"]["cinnabar"]["changes"]] == [cinnabar_server]
    events = write_events(
        tmp_path,
        {
            "op": "update",
            "urn": cinnabar_server,
            "type": SERVER,
            "detailedDiff": {"serverType": {"diffKind": "update"}},
        },
        {
            "op": "replace",
            "urn": magnetite_server,
            "type": SERVER,
            "keys": ["image"],
            "diffs": ["image"],
            "old": {"inputs": {"userData": "SECRET-real-userdata"}},
        },
    )
    out = apply_preview(diff, read_preview(events), plan=new)
    assert out["machines"]["cinnabar"]["changes"][0]["pulumi_op"] == "update"
    assert out["machines"]["cinnabar"]["danger"] == diff["machines"]["cinnabar"]["danger"] == ["reboot"]
    magnetite = out["machines"]["magnetite"]
    assert (
        magnetite["changes"][0].items() >= {"op": "replace", "offline_op": "same", "replace_reasons": ["image"]}.items()
    )
    assert magnetite["danger"] == ["blocked"] and magnetite["status"] == "changed"  # production servers are protected
    assert out["preview"]["disagreements"] == [
        {"urn": magnetite_server, "machine": "magnetite", "offline": "same", "pulumi": "replace"}
    ]
    assert out["summary"]["replace"] == diff["summary"]["replace"] + 1
    assert sum(out["summary"].values()) == sum(diff["summary"].values()) == len(new["resources"])
    assert out["preview"]["unmatched"] == [] and "SECRET-real" not in json.dumps(out)


def test_no_secret_of_the_fixtures_comes_out() -> None:
    secrets = secrets_in_fixtures()
    outputs = []
    for path in (DIGEST, EVENTS):
        preview = read_preview(path)
        outputs += [repr(preview), json.dumps(apply_preview(offline_diff(), preview))]
    leaked = {s for s in secrets for text in outputs if s in text}
    assert not leaked
    assert all(CIN in text for text in outputs)  # the outputs do hold what the fixtures say


# Run in a fresh interpreter: every string reachable from a live object (dicts of plain strings are not
# tracked by gc, so the walk descends from the tracked ones) that starts like a fixture secret.
HELD = """
import gc, json, sys
from pathlib import Path
from fleet_sdk.review.preview import read_preview
if sys.argv[1] == "leak":  # the control: parsed documents kept alive
    kept = [json.loads(Path(sys.argv[2]).read_text()), *map(json.loads, Path(sys.argv[3]).read_text().splitlines())]
else:
    kept = [read_preview(Path(p)) for p in sys.argv[2:]]
gc.collect()
marker = "SECRET" + "-"
held, seen, stack = set(), set(), list(gc.get_objects())
while stack:
    o = stack.pop()
    if id(o) in seen:
        continue
    seen.add(id(o))
    if isinstance(o, str):
        if o.startswith(marker) and o != marker:
            held.add(o)
    elif isinstance(o, dict):
        stack += [*o.keys(), *o.values()]
    elif isinstance(o, (list, tuple, set, frozenset)):
        stack += list(o)
    else:
        try:  # object's own lookup: no __getattr__ of the object runs
            stack.append(object.__getattribute__(o, "__dict__"))
        except Exception:
            pass
print(json.dumps(sorted(held)))
"""


def held_secrets(mode: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", HELD, mode, str(DIGEST), str(EVENTS)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_nothing_of_the_states_stays_in_memory_after_reading() -> None:
    assert held_secrets("read") == []
    assert len(held_secrets("leak")) >= 15  # the scan does find values that are kept


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        (b"\xff\xfe", "not UTF-8"),
        ("Previewing update (prod):\n  + 1 to create\n", "not JSON (line 1, column 1"),
        ("[1, 2]", "JSON of type list that is neither a preview digest"),
        ('{"name": "x"}', "a JSON object that is neither a preview digest"),
        ('{"steps": {}}', "steps: expected a list, got dict"),
        ('{"steps": [{"op": "update"}]}', "steps[0].urn: expected a non-empty string, got nothing"),
        (
            '{"steps": [{"op": "update", "urn": {"v": "SECRET-x-value"}}]}',
            "steps[0].urn: expected a non-empty string, got a dict",
        ),
        (
            '{"steps": [{"op": "update", "urn": "u", "detailedDiff": {"a": {"diffKind": "update"}}}]}',
            'steps[0].detailedDiff["a"].kind: expected a string',
        ),
        (
            '{"sequence": 0, "resourcePreEvent": {"metadata": {"op": "same"}}}\n{"sequence": 1,',
            "line 1: resourcePreEvent.metadata.urn: expected a non-empty string",
        ),
        ('{"sequence": 0, "cancelEvent": {}}\n{"sequence": 1,\n', "line 2: not JSON (column"),
        ('{"sequence": 0, "cancelEvent": {}}\n[3]\n', "line 2: not an engine event"),
        (
            '{"sequence": 0, "resourcePreEvent": {"metadata": {"op": "replace", "urn": "u", "keys": "zone"}}}',
            "line 1: resourcePreEvent.metadata.keys: expected a list of property names",
        ),
        ('{"sequence": 0, "summaryEvent": {"resourceChanges": [1]}}', "summaryEvent.resourceChanges: expected an"),
    ],
)
def test_anything_else_is_a_clear_error_naming_file_and_place(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "preview.out"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigError) as error:
        read_preview(path)
    text = str(error.value)
    assert text.startswith(f"{path}: ") and message in text, text
    assert "SECRET-x-value" not in text


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the preview"):
        read_preview(tmp_path / "absent.json")
