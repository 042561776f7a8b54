"""Switching a machine off and on (prod stack, `-c fleet:enabled=[…]`, offline plans): off deletes its
server, install step, DNS records and ZeroTier admission (whose delete deauthorizes it), unless its
server is protected (then the delete is blocked), and keeps its vars step; the controller's step is
re-run without it. On again registers the very same resources with the same inputs, and no plan
touches vars/ or sops/."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from fleet_sdk.review import plan as planning
from fleet_sdk.review.diff import diff_plans

from .conftest import PROJECT
from .test_plan_diff import SERVER
from .vars_project import snapshot

DNS = "cloudflare:index/dnsRecord:DnsRecord"
COMMAND = "command:local:Command"
ENABLED = ("cinnabar", "magnetite", "pyrite", "blackphos", "stibnite", "rosegold", "argentum")


@cache
def prod(*enabled: str) -> dict[str, Any]:
    return planning.make_plan(PROJECT, "prod", [f"fleet:enabled={json.dumps(list(enabled))}"]).document


def owned(doc: dict[str, Any], machine: str) -> dict[str, dict[str, Any]]:
    return {r["urn"]: r for r in doc["resources"] if machine in (r.get("machine"), r.get("subject"))}


def ops(diff: dict[str, Any], machine: str) -> set[tuple[str, str, str]]:
    return {(c["op"], c["type"], c["name"]) for c in diff["machines"][machine]["changes"]}


def test_off_deletes_server_install_dns_and_admission_and_keeps_the_vars_step() -> None:
    on, off = prod(*ENABLED, "electrum"), prod(*ENABLED)
    diff = diff_plans(on, off)
    assert ops(diff, "electrum") == {
        ("delete", SERVER, "electrum"),
        ("delete", COMMAND, "electrum-install"),  # its delete drops the known_hosts line
        ("delete", DNS, "electrum-a"),
        ("delete", DNS, "electrum-aaaa"),
        ("delete", COMMAND, "zerotier-admit-electrum"),  # its delete deauthorizes the member
    }
    # not protected: its disk goes with it; and it leaves the ZeroTier network
    assert diff["machines"]["electrum"]["danger"] == ["wipe", "network"]
    admission = next(r for r in on["resources"] if r["name"] == "zerotier-admit-electrum")
    assert admission["inputs"]["delete"] == "<computed>"  # the ids, known once its vars step ran
    kept = {r["name"] for r in owned(off, "electrum").values()}
    assert "electrum-vars" in kept and "zerotier-admit-electrum" not in kept  # vars and keys stay
    # the controller's step authorises the member list again, without it
    assert {m for m, e in diff["machines"].items() if e["status"] != "unchanged"} == {"electrum", "cinnabar"}
    assert ops(diff, "cinnabar") == {("replace", COMMAND, "zerotier-controller")}


def test_a_protected_server_switched_off_is_blocked() -> None:
    diff = diff_plans(prod(*ENABLED), prod(*(m for m in ENABLED if m != "magnetite")))
    server = next(c for c in diff["machines"]["magnetite"]["changes"] if c["type"] == SERVER)
    assert server["op"] == "delete" and server["protect"] is True
    assert diff["machines"]["magnetite"]["danger"] == ["blocked", "network"]


def test_on_again_registers_the_same_identity_and_no_plan_writes_vars() -> None:
    before = snapshot(PROJECT)
    first = prod(*ENABLED, "electrum")
    prod.cache_clear()  # planned anew after the machine was off
    prod(*ENABLED)
    again = prod(*ENABLED, "electrum")
    assert snapshot(PROJECT) == before  # vars/ and sops/ untouched
    assert owned(again, "electrum") == owned(first, "electrum")  # same URNs, inputs, options, deps
    install = next(r for r in again["resources"] if r["name"] == "electrum-install")
    assert install["inputs"]["triggers"] == ["<computed>"]  # the new server's id: installed again
    # what the install reads from vars (host key, ZeroTier identity) is declared and stored alike
    assert again["machines"]["electrum"]["generators"] == first["machines"]["electrum"]["generators"]
    diff = diff_plans(prod(*ENABLED), again)
    assert ("create", SERVER, "electrum") in ops(diff, "electrum")
    assert ("create", COMMAND, "electrum-install") in ops(diff, "electrum")
    # the vars step is unchanged (not listed); the admission is created again, with the inputs it had
    # (the same ZeroTier member: its ids come from the unchanged vars step)
    rest = {(c["op"], c["name"], tuple(c["unknown"])) for c in diff["machines"]["electrum"]["changes"]}
    rest -= {("create", n, ()) for n in ("electrum", "electrum-install", "electrum-a", "electrum-aaaa")}
    assert rest == {("create", "zerotier-admit-electrum", ())}
