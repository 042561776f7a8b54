"""`pulumi up` as close as this machine allows: a three-machine fleet project (stacks/dev.py,
Pulumi.dev.yaml, a FakeFlake as `fleet:flake`) whose program (`run_program`, the body of __main__.py)
is applied by fleet_sdk.testing.apply: every `fleet` step of the graph runs for real, in dependency
order, as pulumi-command runs it. Twice: cloud machines (vars → install → deploy → ZeroTier
admission), and machines installed by hand (vars → deploy → admission).

What stands in for what:
- Hetzner: the applier's `cloud_outputs` hook. A server the apply creates is a FakeTarget (a real
  sshd) booted then: fresh Debian, letting root in with the key of the SSH key resource the server
  names (the fleet's deploy key, which the first machine's vars step generated in this same apply),
  on a loopback address of its own (127.0.0.2, .3, .4), which is its `ipv4Address`. The graph reaches
  each at `root@<ipv4>`, without a port, as it would reach a real server.
- Port 22 of each address: the operator's ssh setup (~/.ssh/config) is an `ssh` on PATH adding
  `-F <config>`, which maps each address to its sshd's port (`Port`) and names the host key by the
  address alone (`HostKeyAlias`), as known_hosts names a server on port 22. Every ssh of the steps
  goes through it, or finds no sshd there: fleet's own, `nix copy`'s (nix runs `ssh` from PATH) and
  the nixos-anywhere shim's. The config also gives a known_hosts file and the operator's own login
  key, which the deploys log in with (they pass no key: the installed system would let it in, as its
  configuration says). A target lets that key in from its first boot, so the test reads in each sshd's
  log that the fresh server and the installer were logged into with the deploy key only. Options the
  steps pass with -o win over the file.
- nixos-anywhere: the shim of fleet_sdk.testing.targethost (kexec, disko, install, reboot on the
  FakeTarget over real ssh). The installed system is the flake's; its host key the one from vars.
- By-hand machines (`target_host`): FakeTargets on 127.0.0.1 already running an older system, their
  host keys adopted into the vars (`fleet vars set`'s engine) before the first apply, as for any
  machine installed without fleet_sdk: the deploy pins the host key the vars hold.
- zerotier-one cannot run here (no package): the controller's local API (port 9993) is a small HTTP
  server of this test, which the admission scripts reach with the real curl, over real ssh, with the
  authtoken read on the controller (its /var, where zerotier-one would have written it).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typing_extensions import override

from fleet_sdk.graph import run_program
from fleet_sdk.install.target import fingerprint
from fleet_sdk.stack.settings import StackSettings, load_fleet, load_stack_config
from fleet_sdk.testing import (
    ApplyResult,
    ApplyState,
    FakeFlake,
    FakeSystem,
    FakeTarget,
    FakeTargets,
    apply_program,
    nix_env,
)
from fleet_sdk.testing.targethost import missing_requirements, write_nixos_anywhere_shim
from fleet_sdk.vars.inspect import set_var
from fleet_sdk.vars.store import GeneratorId, VarsStore
from fleet_sdk.zerotier.identity import member_id

from .vars_project import make_project

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_requirements()), reason="; ".join(missing_requirements())),
]

MACHINES = ("ctl", "web1", "web2")
ADDRESSES = {"ctl": "127.0.0.2", "web1": "127.0.0.3", "web2": "127.0.0.4"}  # each server's public IPv4
TOKEN = "tok3n"  # the controller's authtoken
SERVER = "hcloud:index/server:Server"
SSH_KEY = "hcloud:index/sshKey:SshKey"

STACK = """
from fleet_sdk.disko.layouts import ext4_root
from fleet_sdk.spec import (
    Deploy, Fleet, Generator, GeneratorFile, HealthChecks, HetznerHost, Machine, Role, ServiceInstance,
)
from fleet_sdk.vars import stock

TARGETS = {targets!r}  # the by-hand machines' target hosts; None: each machine is a Hetzner server
WEB2_CHECKS = {web2_checks!r}


def _app(inputs, prompts, out):
    import secrets

    (out / "token").write_text(secrets.token_hex(16))


# a secret the install puts on the new system and the deploy uploads before activation
app = Generator(name="app", files=(GeneratorFile(name="token", needed_for="activation"),), python=_app)
zerotier = ServiceInstance(
    name="zt", module="zerotier", roles={{"controller": Role(machines=("ctl",)), "peer": Role(tags=("peer",))}}
)


def machine(name, after=(), checks=()):
    if TARGETS is None:
        place = dict(host=HetznerHost(server_type="cx22", location="nbg1"), disks=ext4_root("/dev/sda", boot="bios"))
        generators = (stock.openssh(), stock.deploy_key(), app)
    else:
        place, generators = dict(target_host=TARGETS[name]), (stock.openssh(), app)
    return Machine(
        name=name,
        tags=() if name == "ctl" else ("peer",),
        generators=generators,
        deploy=Deploy(after=after, health_checks=HealthChecks(commands=checks)),
        **place,
    )


def build(settings):
    return Fleet(name="demo", instances=(zerotier,), machines=(
        machine("ctl"),
        machine("web1", after=("ctl",)),
        machine("web2", after=("ctl",), checks=WEB2_CHECKS),
    ))
"""


class ControllerApi(ThreadingHTTPServer):
    """ZeroTier's local controller API, as far as admission uses it: each POST recorded."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 9993), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: ControllerApi

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts.append({"path": self.path, "auth": self.headers.get("X-ZT1-AUTH"), "body": json.loads(body)})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"authorized": true}')

    @override
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def controller_api() -> Iterator[ControllerApi]:
    try:
        api = ControllerApi()
    except OSError as e:
        pytest.skip(f"port 9993 (the ZeroTier controller API) is taken here: {e}")
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    yield api
    api.shutdown()
    api.server_close()
    thread.join()


class OperatorSsh:
    """The operator's ssh setup: a folder with an `ssh` (for PATH) that reads `config`: the login key,
    a known_hosts file, and for each server its sshd's port and the address as the host key's name."""

    def __init__(self, folder: Path, login_key: Path) -> None:
        folder.mkdir()
        self.folder = folder
        self.config = folder / "config"
        self.known_hosts = folder / "known_hosts"
        self._text = (
            f"IdentityFile {login_key}\nUserKnownHostsFile {self.known_hosts}\nGlobalKnownHostsFile /dev/null\n"
        )
        self._lock = threading.Lock()
        self._write()
        shim = folder / "ssh"
        shim.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {self.config} "$@"\n')
        shim.chmod(stat.S_IRWXU)

    def route(self, host: FakeTarget) -> None:
        """`ssh root@ADDRESS` reaches `host`, as port 22 of a server would."""
        with self._lock:
            self._text += f"\nHost {host.address}\n  Port {host.port}\n  HostKeyAlias {host.address}\n"
            self._write()

    def _write(self) -> None:
        new = self.config.with_suffix(".new")  # whole, for the ssh clients reading it meanwhile
        new.write_text(self._text)
        new.replace(self.config)


class Cloud:
    """The applier's `cloud_outputs` hook: a server, when the apply creates it, boots as a fresh
    Debian FakeTarget on its own address, letting in the keys of the SSH key resources it names."""

    def __init__(self, hosts: FakeTargets, state: ApplyState, operator: OperatorSsh) -> None:
        self.hosts, self.state, self.operator = hosts, state, operator
        self.servers: dict[str, FakeTarget] = {}

    def __call__(self, type_: str, name: str, inputs: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if type_ != SERVER:
            return None
        keys = [e.inputs["publicKey"] for e in list(self.state.resources.values())
                if e.type == SSH_KEY and e.id in inputs["sshKeys"]]  # fmt: skip
        assert keys, f"server {name} names no SSH key of the state: {inputs['sshKeys']}"
        host = self.hosts.new(name, os_kind="debian", address=ADDRESSES[name], authorized_keys=keys, reboot_delay=0.05)
        if name == "ctl":  # what the installed system's zerotier-one writes when it starts
            (host.root / "var/lib/zerotier-one").mkdir(parents=True)
            (host.root / "var/lib/zerotier-one/authtoken.secret").write_text(TOKEN)
        self.operator.route(host)
        self.servers[name] = host
        return {"ipv4Address": host.address}


class Site:
    """The project and the shell `pulumi up` runs in (the operator's age key, nix settings, ssh,
    nixos-anywhere, a state folder), and the applies of its stack, which share one state."""

    def __init__(self, tmp_path: Path, hosts: FakeTargets, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
        self.flake = FakeFlake(tmp_path / "flake", {m: FakeSystem(version=version) for m in MACHINES})
        self.project, env = make_project(tmp_path / "fleet", "")
        (self.project / "Pulumi.dev.yaml").write_text(f"config:\n  fleet:flake: {self.flake.ref}\n")
        self.age_key = env["SOPS_AGE_KEY"]
        self.operator = OperatorSsh(tmp_path / "operator-ssh", hosts.client_key)
        self.log = tmp_path / "nixos-anywhere.jsonl"
        shim = write_nixos_anywhere_shim(tmp_path / "bin", self.log, timeout=30)
        monkeypatch.setenv("SOPS_AGE_KEY", self.age_key)
        monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
        monkeypatch.setenv("NIX_CONFIG", nix_env()["NIX_CONFIG"])
        monkeypatch.setenv("PATH", f"{self.operator.folder}:{shim.parent}:{os.environ['PATH']}")
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        self.state = ApplyState()
        self.cloud = Cloud(hosts, self.state, self.operator)

    def stack(self, targets: dict[str, str] | None = None, web2_checks: tuple[str, ...] = ()) -> None:
        (self.project / "stacks/dev.py").write_text(STACK.format(targets=targets, web2_checks=web2_checks))

    def up(self) -> ApplyResult:
        return apply_program(
            lambda: run_program(self.project),
            self.state,
            project="demo",
            stack="dev",
            config=load_stack_config(self.project, "dev").values,
            cwd=self.project,
            timeout=120,
            cloud_outputs=self.cloud,
        )


def test_pulumi_up_installs_deploys_and_admits_cloud_servers_then_reruns_only_what_changed(
    tmp_path: Path, target_hosts: FakeTargets, controller_api: ControllerApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    site = Site(tmp_path, target_hosts, monkeypatch, version="1")
    site.stack()
    flake, state = site.flake, site.state
    first = site.up()
    print(f"first apply: {summary(first)}")
    check_first_apply(first, site)
    check_admissions(first, site.project, controller_api)
    ctl = site.cloud.servers["ctl"]
    finished = [r.name for r in first.runs]
    for member in ("web1", "web2"):  # admitted on the installed controller, each member once installed
        assert finished.index("ctl-install") < finished.index(f"zt-admit-{member}") < finished.index("zt-controller")
        assert finished.index(f"{member}-install") < finished.index(f"zt-admit-{member}")
    # the admissions reached the controller at its address, which presented its key from vars
    assert site.operator.known_hosts.read_text().split() == [ctl.address, *ctl.host_public_key.split()]
    hosts = [site.cloud.servers[m] for m in MACHINES]
    boots = [t.boot for t in hosts]

    # nothing changed: no command runs (the deploys' secrets triggers are the digests the vars steps
    # reported after generating, which is what the repository now holds: graph.deploy.secrets_trigger)
    second = site.up()
    assert second.ran() == [], f"nothing changed, yet ran: {summary(second)}"

    # a changed closure: that machine's deploy only (no install: its trigger is the server's id)
    old = flake.out_path("web1")
    flake.set("web1", version="2")
    third = site.up()
    assert third.ran() == ["web1-deploy"], summary(third)
    assert hosts[1].current_system() == flake.out_path("web1") != old
    assert [t.current_system() for t in (hosts[0], hosts[2])] == [flake.out_path("ctl"), flake.out_path("web2")]
    assert third.outputs["machines"]["web1"]["system"] == flake.out_path("web1")

    # changed deploy settings: that machine's deploy only, on the same server, never its install
    servers = {m: state.entry(m, SERVER).id for m in MACHINES}
    site.stack(web2_checks=("test -L /run/current-system", "true"))
    fourth = site.up()
    assert fourth.ran() == ["web2-deploy"], summary(fourth)
    assert fourth.run("web2-deploy").operation == "replace"  # its settings trigger changed
    assert {m: state.entry(m, SERVER).id for m in MACHINES} == servers
    assert [t.boot for t in hosts] == boots  # nothing was installed or rebooted again
    assert json.loads(fourth.run("web2-deploy").stdout)["web2"]["status"] == "unchanged"
    print(f"then: {summary(third)}; {summary(fourth)}; whole test {time.monotonic() - started:.1f} s")


def test_pulumi_up_deploys_and_admits_machines_installed_by_hand(
    tmp_path: Path, target_hosts: FakeTargets, controller_api: ControllerApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    site = Site(tmp_path, target_hosts, monkeypatch, version="0")
    old = site.flake.build_all()
    hosts = [target_hosts.new(m) for m in MACHINES]
    for t in hosts:
        t.install(old[t.name])  # by-hand machines, already running NixOS
    for m in MACHINES:
        site.flake.set(m, version="1")
    site.stack(targets={t.name: t.target for t in hosts}, web2_checks=("test -L /run/current-system",))
    adopt_host_keys(site.project, hosts, site.age_key)
    (hosts[0].root / "var/lib/zerotier-one").mkdir(parents=True)
    (hosts[0].root / "var/lib/zerotier-one/authtoken.secret").write_text(TOKEN)

    first = site.up()
    steps = [f"{m}-{s}" for m in MACHINES for s in ("vars", "deploy")]
    assert first.ran() == sorted([*steps, "zt-admit-web1", "zt-admit-web2", "zt-controller"])
    assert all(r.ok for r in first.runs)
    finished = [r.name for r in first.runs]
    for m in MACHINES:  # each deploy after its vars; the peers' deploys after the controller's (after=)
        assert finished.index(f"{m}-vars") < finished.index(f"{m}-deploy")
    assert finished.index("ctl-deploy") < min(finished.index("web1-deploy"), finished.index("web2-deploy"))
    assert finished.index("zt-admit-web1") < finished.index("zt-controller")
    store = VarsStore(site.project)
    for t in hosts:  # the adopted host key kept; deployed from the older system to the flake's
        public = store.public(GeneratorId("openssh", t.name), "ssh.id_ed25519.pub")
        assert public is not None and public.decode().strip() == t.host_public_key
        assert json.loads(first.run(f"{t.name}-deploy").stdout)[t.name]["status"] == "deployed"
        check_deployed(first, t, store, site.age_key)
    check_admissions(first, site.project, controller_api)
    assert not (site.project / "known_hosts").exists()  # nothing was installed

    assert site.up().ran() == []
    site.flake.set("web1", version="2")
    third = site.up()
    assert third.ran() == ["web1-deploy"]
    assert hosts[1].current_system() == site.flake.out_path("web1") != old["web1"]
    print(f"first apply: {summary(first)}; third: {summary(third)}; whole test {time.monotonic() - started:.1f} s")


def adopt_host_keys(project: Path, hosts: list[FakeTarget], age_key: str) -> None:
    """Each machine's own host key as its openssh vars, as `fleet vars set` stores them."""
    settings = StackSettings.from_values(load_stack_config(project, "dev").values, project)
    fleet = load_fleet(project, "dev", settings)
    store = VarsStore(project)
    for t in hosts:
        private = (t.root / "etc-ssh" / "ssh_host_ed25519_key").read_bytes()
        set_var(store, fleet, t.name, "openssh/ssh.id_ed25519", private, [age_key])
        set_var(store, fleet, t.name, "openssh/ssh.id_ed25519.pub", t.host_public_key.encode() + b"\n", [age_key])


def summary(result: ApplyResult) -> str:
    return ", ".join(f"{r.name} {r.operation} {r.duration:.1f}s" for r in result.runs) or "nothing ran"


def check_first_apply(first: ApplyResult, site: Site) -> None:
    project, cloud = site.project, site.cloud
    steps = [f"{m}-{s}" for m in MACHINES for s in ("vars", "install", "deploy")]
    assert first.ran() == sorted([*steps, "zt-admit-web1", "zt-admit-web2", "zt-controller"])
    assert all(r.ok for r in first.runs)
    finished = [r.name for r in first.runs]
    for m in MACHINES:  # vars, install, deploy; the peers' deploys after the controller's (after=)
        assert finished.index(f"{m}-vars") < finished.index(f"{m}-install") < finished.index(f"{m}-deploy")
    assert finished.index("ctl-deploy") < min(finished.index("web1-deploy"), finished.index("web2-deploy"))
    # the fleet's deploy key, generated by the first vars step, is what the SSH key resource holds
    store = VarsStore(project)
    deploy_key = store.public(GeneratorId("deploy-key", None), "id_ed25519.pub")
    assert deploy_key is not None
    assert first.graph.one(SSH_KEY, "demo-deploy").inputs["publicKey"].strip() == deploy_key.decode().strip()
    # the repository: each machine's layout, hardware report, install record and known host, tracked
    listed = subprocess.run(["git", "-C", project, "ls-files"], capture_output=True, text=True, check=True)
    tracked = set(listed.stdout.split())
    known = (project / "known_hosts").read_text().splitlines()
    for m in MACHINES:
        assert {f"machines/{m}/{f}.json" for f in ("disko", "facter", "install")} | {"known_hosts"} <= tracked
        public = store.public(GeneratorId("openssh", m), "ssh.id_ed25519.pub")
        assert public is not None
        key = " ".join(public.decode().split()[:2])
        assert f"{ADDRESSES[m]} {key} fleet:{m}" in known  # port 22's line: no [address]:port
        check_installed(first, cloud.servers[m], key, site.flake, site.log)
        # the installed system is the flake's, but the deploy finds no record of the secrets it
        # uploads (the install wrote them, not their digest): it uploads them, activates it again
        deployed = json.loads(first.run(f"{m}-deploy").stdout)[m]
        assert deployed["status"] == "deployed" and deployed["current"] == site.flake.out_path(m)
        check_deployed(first, cloud.servers[m], store, site.age_key)
    assert len(known) == 3


def check_installed(first: ApplyResult, host: FakeTarget, key: str, flake: FakeFlake, log: Path) -> None:
    m = host.name
    outputs = first.outputs["machines"][m]
    assert outputs["ipv4"] == host.address
    assert outputs["install"] == "installed" and outputs["host_key_fingerprint"] == fingerprint(key)
    # the fresh Debian server was installed from the flake, then checked strictly against the vars host key
    assert host.current_os() == "nixos" and host.host_public_key == key
    assert host.booted_system() == flake.out_path(m) and host.boot == 3  # debian, installer, installed
    runs = [r for r in map(json.loads, log.read_text().splitlines()) if r["target"] == f"root@{host.address}"]
    assert [r["phases"] for r in runs] == [["kexec"], ["disko"], ["install"], ["reboot"]]
    assert all(r["result"] == "ok" and r["port"] is None for r in runs)  # the address alone, no port
    # every login to the fresh server and its installer was with the fleet's deploy key, which the
    # server let in because its SSH key resource holds it; the operator's own key came after
    deploy_key = first.graph.one(SSH_KEY, "demo-deploy").inputs["publicKey"]
    before, installed = accepted_keys(host)
    assert before and set(before) == {fingerprint(deploy_key)}
    assert fingerprint(host.client_key.with_suffix(".pub").read_text()) in installed


def accepted_keys(host: FakeTarget) -> tuple[list[str], list[str]]:
    """The fingerprints of the keys sshd accepted before the installed system booted (its first two
    boots), and since (sshd.log: one "Server listening" line a boot)."""
    boots: list[list[str]] = []
    for line in (host.root / "var/log/sshd.log").read_text().splitlines():
        if line.startswith("Server listening on "):
            boots.append([])
        elif line.startswith("Accepted publickey for root "):
            boots[-1].append(line.split()[-1])
    assert len(boots) == 3, boots
    return boots[0] + boots[1], boots[2]


def check_deployed(first: ApplyResult, host: FakeTarget, store: VarsStore, age_key: str) -> None:
    """It runs the system the deploy reported, with the machine's age key and activation secret."""
    m = host.name
    assert host.current_system() == first.outputs["machines"][m]["system"] is not None
    assert (host.root / "var/lib/sops-nix/key.txt").is_file()
    uploaded = host.root / f"var/lib/sops-nix/activation/per-machine/{m}/app/token"
    assert uploaded.read_bytes() == store.secret(GeneratorId("app", m), "token", [age_key])


def check_admissions(first: ApplyResult, project: Path, api: ControllerApi) -> None:
    """Every member admitted on the controller with its authtoken; the network's id and members' addresses output."""
    store = VarsStore(project)
    network = store.public(GeneratorId("zerotier-network-zt", None), "network-id")
    assert network is not None and first.outputs["zerotier"]["zt"]["network_id"] == network.decode()
    # each member's address, whose last 10 hex digits are its member id
    members = {m: store.public(GeneratorId(f"zerotier-ip-{m}-zt", None), "ip") for m in MACHINES}
    admitted = {p["path"].rsplit("/", 1)[1] for p in api.posts}
    assert {p["auth"] for p in api.posts} == {TOKEN} and all(p["body"] == {"authorized": True} for p in api.posts)
    assert all(p["path"].startswith(f"/controller/network/{network.decode()}/member/") for p in api.posts)
    assert admitted == {member_id(ip.decode()) for ip in members.values() if ip is not None} and len(admitted) == 3
    assert first.outputs["zerotier"]["zt"]["members"] == {m: ip.decode() for m, ip in members.items() if ip}
