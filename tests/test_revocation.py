"""Revocation when a machine leaves the fleet or is disabled (issue 17): its ZeroTier member is
deauthorized on the controller (the admission's delete), its DNS records are deleted, its known_hosts
line is dropped (the install step's delete), and `fleet vars fix` takes it off the recipients of the
shared secrets, naming them to rotate. Its own vars stay, so it comes back with the same identity.

The applies run as tests/test_apply_e2e.py's (its site, cloud, operator ssh and recording controller
API); the plan test diffs offline plans; the vars test works on a real repository with real age keys.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk import sops
from fleet_sdk.errors import FleetError, SopsError
from fleet_sdk.review import plan as planning
from fleet_sdk.review.diff import diff_plans
from fleet_sdk.sops.tree import KeyEntry, SopsTree
from fleet_sdk.spec import Fleet
from fleet_sdk.testing import FakeTargets
from fleet_sdk.vars.generate import GenerateOptions, generate
from fleet_sdk.vars.store import GeneratorId, VarsStore
from fleet_sdk.zerotier.admission import resolve_deauthorization, script
from fleet_sdk.zerotier.identity import member_id

from . import test_apply_e2e as e2e
from .test_apply_e2e import ControllerApi, Site, controller_api  # noqa: F401 (the fixture)
from .test_plan_diff import DEMO_STACK, write_demo
from .test_zerotier_service import fleet as zerotier_fleet
from .vars_project import fleet_cli, make_project

DNS = "cloudflare:index/dnsRecord:DnsRecord"
COMMAND = "command:local:Command"

# --- pulumi up: disable, enable, remove (the target-host harness) ---


def member_of(project: Path, machine: str) -> str:
    ip = VarsStore(project).public(GeneratorId(f"zerotier-ip-{machine}-zt", None), "ip")
    assert ip is not None
    return member_id(ip.decode())


def posted(api: ControllerApi, since: int) -> list[tuple[str, bool]]:
    """(member id, authorized) of each POST to the controller API after the first `since`."""
    return [(p["path"].rsplit("/", 1)[1], p["body"]["authorized"]) for p in api.posts[since:]]


class Renewed:
    """The targets the cloud hook boots servers on, where a server made again for a machine (enabled
    again) is a target of its own."""

    def __init__(self, hosts: FakeTargets) -> None:
        self.hosts = hosts

    def new(self, name: str, **options: Any) -> Any:
        return self.hosts.new(f"{name}-again" if name in self.hosts.hosts else name, **options)


def known_hosts(project: Path) -> dict[str, str]:
    """fleet:<m> -> its known_hosts line."""
    lines = (project / "known_hosts").read_text().splitlines()
    return {line.split()[-1].removeprefix("fleet:"): line for line in lines}


@pytest.mark.integration
@pytest.mark.skipif(bool(e2e.missing_requirements()), reason="; ".join(e2e.missing_requirements()))
def test_a_disabled_then_removed_machine_is_deauthorized_and_forgotten_and_comes_back_the_same(
    tmp_path: Path,
    target_hosts: FakeTargets,
    controller_api: ControllerApi,  # noqa: F811 (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = Site(tmp_path, target_hosts, monkeypatch, version="1")
    site.stack()
    config = site.project / "Pulumi.dev.yaml"
    base = config.read_text()
    site.up()
    web2 = member_of(site.project, "web2")
    others = {member_of(site.project, m) for m in ("ctl", "web1")}
    host_key = known_hosts(site.project)["web2"].split()[1:3]
    vars_before = {p: p.read_bytes() for p in (site.project / "vars").rglob("*") if p.is_file()}

    # disabled: the admission's delete deauthorizes exactly its member; the controller's step
    # authorises the others again, not it; the install's delete drops its known_hosts line
    config.write_text(base + '  fleet:enabled: \'["ctl", "web1"]\'\n')
    seen = len(controller_api.posts)
    off = site.up()
    assert posted(controller_api, seen)[-1] == (web2, False)
    assert sorted(posted(controller_api, seen)) == sorted([*((m, True) for m in others), (web2, False)])
    assert {p["auth"] for p in controller_api.posts[seen:]} == {e2e.TOKEN}
    assert set(known_hosts(site.project)) == {"ctl", "web1"}
    assert {"zt-admit-web2", "web2-install"} <= {r.name for r in off.runs if r.operation == "delete"}
    assert {p: p.read_bytes() for p in (site.project / "vars").rglob("*") if p.is_file()} == vars_before

    # enabled again, on a new server: admitted as the same member, installed with the same host key
    monkeypatch.setitem(e2e.ADDRESSES, "web2", "127.0.0.5")  # the new server's address
    site.cloud.hosts = Renewed(target_hosts)  # type: ignore[assignment]
    config.write_text(base)
    seen = len(controller_api.posts)
    on = site.up()
    assert "web2-install" in on.ran() and "zt-admit-web2" in on.ran()
    assert (web2, True) in posted(controller_api, seen) and (web2, False) not in posted(controller_api, seen)
    assert known_hosts(site.project)["web2"].split() == ["127.0.0.5", *host_key, "fleet:web2"]
    assert member_of(site.project, "web2") == web2

    # removed from the spec: deauthorized by the ids its admission was created with
    (site.project / "stacks/dev.py").write_text(
        e2e.STACK.replace('        machine("web2", after=("ctl",), checks=WEB2_CHECKS),\n', "").format(
            targets=None, web2_checks=()
        )
    )
    seen = len(controller_api.posts)
    gone = site.up()
    assert posted(controller_api, seen)[-1] == (web2, False)
    assert (web2, False) not in posted(controller_api, seen)[:-1] and len(posted(controller_api, seen)) == 3
    assert set(known_hosts(site.project)) == {"ctl", "web1"}
    assert {"zt-admit-web2", "web2-install"} <= {r.name for r in gone.runs if r.operation == "delete"}
    assert member_of(site.project, "web2") == web2  # its vars stay: it can come back
    assert (site.project / "vars/shared/zerotier-identity-web2/identity-secret/secret").is_file()


# --- `fleet zerotier deauthorize` ---


def test_the_deauthorize_script_posts_authorized_false_for_each_member_id() -> None:
    plan = resolve_deauthorization(VarsStore(Path("/nonexistent")), Fleet(name="f"), "8056c2e21c000001", ["a1b2c3d4e5"])
    text = script(plan.admission, authorized=False)
    assert "/controller/network/8056c2e21c000001/member/a1b2c3d4e5" in text
    assert shlex.quote('{"authorized": false}') in text and "true" not in text
    assert plan.kept == {}


def test_deauthorize_keeps_members_the_fleet_still_admits_unless_forced(tmp_path: Path) -> None:
    # e.g. the old admission of a renamed machine, deleted after the new one admitted the same member
    private, public = sops.generate()
    SopsTree(tmp_path).write_keys("users", "admin", [KeyEntry(public)])
    both = zerotier_fleet(peers=2, allowedIds=["a1b2c3d4e5"])
    generate(tmp_path, both, GenerateOptions(identities=[private]))
    store = VarsStore(tmp_path)
    nwid = store.public(GeneratorId("zerotier-network-zt", None), "network-id")
    assert nwid is not None
    p0, p1 = (member_of(tmp_path, m) for m in ("p0", "p1"))
    wanted = [p0, p1, "a1b2c3d4e5", nwid.decode()[:10], "0123456789"]
    plan = resolve_deauthorization(store, both, nwid.decode(), wanted)
    assert set(plan.kept) == {p0, p1, "a1b2c3d4e5", nwid.decode()[:10]} and plan.admission.controller == "ctl"
    assert plan.admission.members == {"0123456789": "0123456789"}  # not a member of the fleet
    disabled = both.with_enabled(["ctl", "p0"])  # p1 disabled: deauthorized
    assert set(resolve_deauthorization(store, disabled, nwid.decode(), wanted).admission.members) == {
        p1,
        "0123456789",
    }
    forced = resolve_deauthorization(store, both, nwid.decode(), wanted, force=True)
    assert forced.kept == {} and set(forced.admission.members) == set(wanted)


@pytest.mark.parametrize(
    ("network", "members", "message"),
    [
        ("8056c2e21c00000", ["a1b2c3d4e5"], "network id '8056c2e21c00000': give the 16"),
        ("8056c2e21c000001", ["A1B2C3D4E5"], "member id 'A1B2C3D4E5': give the 10"),
        ("8056c2e21c000001", ["a1b2c3d4e5", "web"], "member id 'web': give the 10"),
    ],
)
def test_deauthorize_refuses_what_is_no_network_or_member_id(network: str, members: list[str], message: str) -> None:
    with pytest.raises(FleetError, match=message):
        resolve_deauthorization(VarsStore(Path("/nonexistent")), Fleet(name="f"), network, members)


def test_the_cli_refuses_a_bad_member_id_without_a_traceback(tmp_path: Path) -> None:
    root, env = make_project(
        tmp_path / "fleet", "from fleet_sdk.spec import Fleet\ndef build(s):\n    return Fleet(name='f')\n"
    )
    out = fleet_cli(root, env, "zerotier", "deauthorize", "8056c2e21c000001", "zz")
    assert out.returncode == 1 and "error: member id 'zz'" in out.stderr.decode() and b"Traceback" not in out.stderr


# --- the plan: a removed machine's DNS records and admission are deleted ---

REMOVABLE = DEMO_STACK.replace('protect=settings.object("demo:protect", False),', "protect=False, dns=True,").replace(
    '    roles = {"controller": Role(machines=("ctl",)), "peer": Role(machines=("web", *peers))}',
    '    machines = [m for m in machines if m.name not in settings.object("demo:removed", [])]\n'
    '    roles = {"controller": Role(machines=("ctl",)), '
    '"peer": Role(machines=tuple(m.name for m in machines if m.name != "ctl"))}',
)


def test_a_removed_machines_dns_records_and_admission_are_deleted_in_the_plan(tmp_path: Path) -> None:
    root = write_demo(tmp_path / "project", REMOVABLE)
    (root / "Pulumi.dev.yaml").write_text("config:\n  fleet:flake: .\n  fleet:cloudflareZone: example.net\n")

    def plan(*overrides: str) -> dict[str, Any]:
        return planning.make_plan(root, "dev", list(overrides)).document

    before = plan()
    diff = diff_plans(before, plan('demo:removed=["web"]'))
    deleted = {(c["type"], c["name"]) for c in diff["machines"]["web"]["changes"] if c["op"] == "delete"}
    assert {(DNS, "web-a"), (DNS, "web-aaaa"), (COMMAND, "zt-admit-web"), (COMMAND, "web-install")} <= deleted
    assert not any(c["op"] != "delete" for c in diff["machines"]["web"]["changes"])
    admission = next(r for r in before["resources"] if r["name"] == "zt-admit-web")
    assert admission["inputs"]["delete"] == "<computed>"  # `fleet zerotier deauthorize NWID MID`, once known
    assert diff["machines"]["ctl"]["status"] != "unchanged"  # its records stay; its controller step re-runs
    assert not any(c["type"] == DNS for c in diff["machines"]["ctl"]["changes"])


def test_a_preview_reads_the_admissions_ids_from_the_repository(tmp_path: Path) -> None:
    # so a machine whose vars step re-runs (a new generator) is not previewed as leaving the network
    root = write_demo(tmp_path / "project", REMOVABLE)
    (root / "Pulumi.dev.yaml").write_text("config:\n  fleet:flake: .\n  fleet:cloudflareZone: example.net\n")
    private, public = sops.generate()
    SopsTree(root).write_keys("users", "admin", [KeyEntry(public)])
    out = fleet_cli(root, {**os.environ, "SOPS_AGE_KEY": private}, "vars", "generate")
    assert out.returncode == 0, out.stderr.decode()
    nwid = VarsStore(root).public(GeneratorId("zerotier-network-zt", None), "network-id")
    assert nwid is not None

    def plan(*overrides: str) -> dict[str, Any]:
        return planning.make_plan(root, "dev", list(overrides)).document

    before = plan()
    admission = next(r for r in before["resources"] if r["name"] == "zt-admit-web")
    assert admission["inputs"]["triggers"] == [nwid.decode(), member_of(root, "web")]
    assert admission["inputs"]["delete"] == "<computed>"  # it names the controller's address, not yet known
    diff = diff_plans(before, plan("demo:apiKey=true"))
    assert ("replace", "web-vars") in {(c["op"], c["name"]) for c in diff["machines"]["web"]["changes"]}
    assert "zt-admit-web" not in {c["name"] for c in diff["machines"]["web"]["changes"]}
    assert diff["machines"]["web"]["danger"] == ["secrets"]


# --- `fleet vars fix`: shared secrets lose a machine that left, its own vars stay ---

STACK = """
import json
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine

def build(settings):
    own = Generator(name="own", files=(GeneratorFile(name="t"),), script='echo mine > "$out/t"')
    both = Generator(name="both", share=True, files=(GeneratorFile(name="s"),), script='echo shared > "$out/s"')
    with_db = settings.object("demo:dbShares", True)
    return Fleet(name="demo", machines=(
        Machine(name="web", generators=(own, both)),
        Machine(name="db", generators=(own, both) if with_db else (own,)),
    ))
"""

SHARED = "vars/shared/both/s"
DB_OWN = "vars/per-machine/db/own/t"


def decrypts(repo: Path, secret: str, key: str) -> bytes | None:
    try:
        return sops.decrypt((repo / secret / "secret").read_bytes(), [key]).strip()
    except SopsError:
        return None


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A repository where web and db share `both`: (repo, env, machine -> its age private key)."""
    root, env = make_project(tmp_path / "fleet", STACK)
    out = fleet_cli(root, env, "vars", "generate")
    assert out.returncode == 0, out.stderr.decode()
    (root / "known_hosts").write_text("192.0.2.1 ssh-ed25519 AAAAC3 fleet:web\n192.0.2.2 ssh-ed25519 AAAAD4 fleet:db\n")
    tree = SopsTree(root)
    keys = {m: tree.machine_private_key(m, [env["SOPS_AGE_KEY"]]) for m in ("web", "db")}
    assert decrypts(root, SHARED, keys["db"]) == b"shared"
    return root, env, keys


def test_fix_takes_a_machine_that_no_longer_declares_a_shared_secret_off_it_and_names_it_to_rotate(
    shared: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    repo, env, keys = shared
    (repo / "Pulumi.dev.yaml").write_text("config:\n  demo:dbShares: false\n")
    check = fleet_cli(repo, env, "vars", "check")
    assert check.returncode == 1 and "db: both/s: still encrypted to it" in check.stdout.decode()
    out = fleet_cli(repo, env, "vars", "fix")
    assert out.returncode == 0, out.stderr.decode()
    assert not (repo / SHARED / "machines" / "db").is_symlink()
    assert decrypts(repo, SHARED, keys["db"]) is None  # re-encrypted without it
    assert decrypts(repo, SHARED, keys["web"]) == b"shared"
    assert decrypts(repo, DB_OWN, keys["db"]) == b"mine"  # its own vars stay its own
    assert f"unlinked machines/db from {SHARED}" in out.stdout.decode()
    assert "warning: machine db could read the shared secrets of both" in out.stderr.decode()
    assert "`fleet vars rotate --shared both`" in out.stderr.decode()
    assert set(known_hosts(repo)) == {"web", "db"}  # still an enabled machine of the fleet
    again = fleet_cli(repo, env, "vars", "fix")
    assert "rotate" not in again.stderr.decode() and "every secret is encrypted" in again.stdout.decode()
    assert "still encrypted" not in fleet_cli(repo, env, "vars", "check").stdout.decode()


def test_fix_takes_a_disabled_machine_off_shared_secrets_and_gives_them_back_when_enabled(
    shared: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    repo, env, keys = shared
    (repo / "Pulumi.dev.yaml").write_text("config:\n  fleet:enabled: '[\"web\"]'\n")
    out = fleet_cli(repo, env, "vars", "fix")
    assert out.returncode == 0, out.stderr.decode()
    assert decrypts(repo, SHARED, keys["db"]) is None and decrypts(repo, SHARED, keys["web"]) == b"shared"
    assert decrypts(repo, DB_OWN, keys["db"]) == b"mine"
    assert "`fleet vars rotate --shared both`" in out.stderr.decode()
    assert set(known_hosts(repo)) == {"web"}  # the fallback when the install step's delete did not run
    check = fleet_cli(repo, env, "vars", "check")
    assert "db: both/s" not in check.stdout.decode() + check.stderr.decode()  # not reported as missing access
    # enabled again: the same machine key reads it again
    (repo / "Pulumi.dev.yaml").write_text("config: {}\n")
    out = fleet_cli(repo, env, "vars", "fix")
    assert out.returncode == 0, out.stderr.decode()
    assert decrypts(repo, SHARED, keys["db"]) == b"shared"
    assert SopsTree(repo).machine_private_key("db", [env["SOPS_AGE_KEY"]]) == keys["db"]


def test_fix_leaves_a_removed_machines_own_vars_and_takes_it_off_shared_ones(
    shared: tuple[Path, dict[str, str], dict[str, str]], tmp_path: Path
) -> None:
    repo, env, keys = shared
    stack = repo / "stacks/dev.py"
    stack.write_text(
        stack.read_text().replace('        Machine(name="db", generators=(own, both) if with_db else (own,)),\n', "")
    )
    out = fleet_cli(repo, env, "vars", "fix")
    assert out.returncode == 0, out.stderr.decode()
    assert decrypts(repo, SHARED, keys["db"]) is None and decrypts(repo, SHARED, keys["web"]) == b"shared"
    assert decrypts(repo, DB_OWN, keys["db"]) == b"mine" and (repo / DB_OWN / "machines" / "db").is_symlink()
    assert (repo / "sops/machines/db/key.json").is_file()  # its key stays: it can come back
    assert "`fleet vars rotate --shared both`" in out.stderr.decode()
    assert set(known_hosts(repo)) == {"web"}


# --- `fleet machine forget` ---


def test_forget_drops_only_that_machines_known_hosts_line(shared: tuple[Path, dict[str, str], dict[str, str]]) -> None:
    repo, env, _ = shared
    out = fleet_cli(repo, env, "machine", "forget", "db", "--repo", str(repo))
    assert out.returncode == 0, out.stderr.decode()
    assert (repo / "known_hosts").read_text() == "192.0.2.1 ssh-ed25519 AAAAC3 fleet:web\n"
    assert "dropped fleet:db" in out.stdout.decode()
    again = fleet_cli(repo, env, "machine", "forget", "db", "--repo", str(repo))
    assert again.returncode == 0 and "no line for fleet:db" in again.stdout.decode()


# --- access given back (vars.access): generate, deploy and install link an enabled machine again ---


@pytest.mark.parametrize(
    "command",
    [
        ("vars", "generate", "db"),
        # a deploy (or install) links it before building the system that carries the secret; the
        # deploy itself then fails here (nothing listens there), after the repository was mended
        ("machine", "deploy", "db", "--target-host", "root@127.0.0.1:1", "--system", "/nix/store/x-none"),
    ],
)
def test_an_enabled_machine_gets_its_shared_secrets_back_without_fix(
    shared: tuple[Path, dict[str, str], dict[str, str]], command: tuple[str, ...]
) -> None:
    repo, env, keys = shared
    (repo / "Pulumi.dev.yaml").write_text("config:\n  fleet:enabled: '[\"web\"]'\n")
    assert fleet_cli(repo, env, "vars", "fix").returncode == 0
    assert decrypts(repo, SHARED, keys["db"]) is None
    (repo / "Pulumi.dev.yaml").write_text("config: {}\n")
    fleet_cli(repo, env, *command)
    assert (repo / SHARED / "machines" / "db").is_symlink()
    assert decrypts(repo, SHARED, keys["db"]) == b"shared" and decrypts(repo, SHARED, keys["web"]) == b"shared"
    check = fleet_cli(repo, env, "vars", "check")
    assert check.returncode == 0, check.stdout.decode()


def test_a_machine_new_to_a_generated_shared_generator_gets_its_secrets_from_generate(
    shared: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    repo, env, keys = shared
    (repo / "Pulumi.dev.yaml").write_text("config:\n  demo:dbShares: false\n")
    assert fleet_cli(repo, env, "vars", "fix").returncode == 0  # db stops sharing it
    assert decrypts(repo, SHARED, keys["db"]) is None
    (repo / "Pulumi.dev.yaml").write_text("config: {}\n")  # and declares it again
    out = fleet_cli(repo, env, "vars", "generate", "db")
    assert out.returncode == 0, out.stderr.decode()
    assert decrypts(repo, SHARED, keys["db"]) == b"shared"  # the same value, now encrypted to it too
    # a disabled machine is not given access
    (repo / "Pulumi.dev.yaml").write_text("config:\n  fleet:enabled: '[\"web\"]'\n")
    assert fleet_cli(repo, env, "vars", "fix").returncode == 0
    assert fleet_cli(repo, env, "vars", "generate").returncode == 0
    assert decrypts(repo, SHARED, keys["db"]) is None
