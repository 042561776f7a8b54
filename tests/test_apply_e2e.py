"""`pulumi up` as close as this machine allows: a three-machine fleet project (stacks/dev.py,
Pulumi.dev.yaml, a FakeFlake as `fleet:flake`) whose program (`run_program`, the body of
__main__.py) is applied by fleet_sdk.testing.apply: every `fleet` step of the graph runs for real, in
dependency order, against FakeTargets (a real sshd each) and a stand-in ZeroTier controller API.

What stands in for what:
- The machines are by-hand NixOS machines (`target_host`), each a FakeTarget already running an
  older system. Their host keys are adopted into the vars (`fleet vars set`'s engine) before the first
  apply, as for any machine installed without fleet_sdk: the deploy pins the host key the vars hold.
- The operator's ssh setup (~/.ssh/config: the login key, a known_hosts file) is an `ssh` on PATH that
  adds `-F <config>`: the graph's steps take no identity file and rely on ssh's own defaults, and
  this machine's /root/.ssh stays untouched. Options the steps pass with -o still win over the file.
- zerotier-one cannot run here (no package): the controller's local API (port 9993) is a small HTTP
  server of this test, which the admission scripts reach with the real curl, over real ssh, with the
  authtoken read on the controller (the FakeTarget's own /var).
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typing_extensions import override

from fleet_sdk.graph import run_program
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
from fleet_sdk.testing.targethost import missing_requirements
from fleet_sdk.vars.inspect import set_var
from fleet_sdk.vars.store import GeneratorId, VarsStore
from fleet_sdk.zerotier.identity import member_id

from .vars_project import make_project

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_requirements()), reason="; ".join(missing_requirements())),
]

MACHINES = ("ctl", "web1", "web2")
TOKEN = "tok3n"  # the controller's authtoken

STACK = """
from fleet_sdk.spec import Deploy, Fleet, Generator, GeneratorFile, HealthChecks, Machine, Role, ServiceInstance
from fleet_sdk.vars import stock as builtins

TARGETS = {targets!r}


def _app(inputs, prompts, out):
    import secrets

    (out / "token").write_text(secrets.token_hex(16))


# a secret the deploy uploads before activation
app = Generator(name="app", files=(GeneratorFile(name="token", needed_for="activation"),), python=_app)
zerotier = ServiceInstance(
    name="zt", module="zerotier", roles={{"controller": Role(machines=("ctl",)), "peer": Role(tags=("peer",))}}
)


def machine(name, after=(), checks=()):
    return Machine(
        name=name,
        tags=() if name == "ctl" else ("peer",),
        target_host=TARGETS[name],
        generators=(builtins.openssh(), app),
        deploy=Deploy(after=after, health_checks=HealthChecks(commands=checks)),
    )


def build(settings):
    return Fleet(name="demo", instances=(zerotier,), machines=(
        machine("ctl"),
        machine("web1", after=("ctl",)),
        machine("web2", after=("ctl",), checks=("test -L /run/current-system",)),
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


def operator_ssh(folder: Path, client_key: Path) -> Path:
    """A folder with an `ssh` that reads `config` (login key, known_hosts here), for PATH."""
    folder.mkdir()
    config = folder / "config"
    config.write_text(
        f"IdentityFile {client_key}\nUserKnownHostsFile {folder / 'known_hosts'}\nGlobalKnownHostsFile /dev/null\n"
    )
    shim = folder / "ssh"
    shim.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {config} "$@"\n')
    shim.chmod(stat.S_IRWXU)
    return folder


def adopt_host_keys(project: Path, hosts: list[FakeTarget], age_key: str) -> None:
    """Each machine's own host key as its openssh vars, as `fleet vars set` stores them."""
    settings = StackSettings.from_values(load_stack_config(project, "dev").values, project)
    fleet = load_fleet(project, "dev", settings)
    store = VarsStore(project)
    for t in hosts:
        private = (t.root / "etc-ssh" / "ssh_host_ed25519_key").read_bytes()
        set_var(store, fleet, t.name, "openssh/ssh.id_ed25519", private, [age_key])
        set_var(store, fleet, t.name, "openssh/ssh.id_ed25519.pub", t.host_public_key.encode() + b"\n", [age_key])


def test_pulumi_up_twice_then_one_changed_system(
    tmp_path: Path, target_hosts: FakeTargets, controller_api: ControllerApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    flake = FakeFlake(tmp_path / "flake", {m: FakeSystem(version="0") for m in MACHINES})
    old = flake.build_all()
    hosts = [target_hosts.new(m) for m in MACHINES]
    for t in hosts:
        t.install(old[t.name])  # by-hand machines, already running NixOS
    for m in MACHINES:
        flake.set(m, version="1")
    targets = {t.name: t.target for t in hosts}
    project, env = make_project(tmp_path / "fleet", STACK.format(targets=targets))
    (project / "Pulumi.dev.yaml").write_text(f"config:\n  fleet:flake: {flake.ref}\n")
    ssh_dir = operator_ssh(tmp_path / "operator-ssh", target_hosts.client_key)
    # the shell `pulumi up` runs in: the operator's age key, nix settings, ssh
    monkeypatch.setenv("SOPS_AGE_KEY", env["SOPS_AGE_KEY"])
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    monkeypatch.setenv("NIX_CONFIG", nix_env()["NIX_CONFIG"])
    monkeypatch.setenv("PATH", f"{ssh_dir}:{os.environ['PATH']}")
    adopt_host_keys(project, hosts, env["SOPS_AGE_KEY"])
    ctl = hosts[0]
    (ctl.root / "var/lib/zerotier-one").mkdir(parents=True)
    (ctl.root / "var/lib/zerotier-one/authtoken.secret").write_text(TOKEN)

    config = load_stack_config(project, "dev").values
    state = ApplyState()

    def up() -> ApplyResult:
        return apply_program(
            lambda: run_program(project), state, project="demo", stack="dev", config=config, cwd=project, timeout=120
        )

    first = up()
    check_first_apply(first, project, hosts, flake, controller_api, env["SOPS_AGE_KEY"])
    print(f"first apply: {summary(first)}")

    # nothing changed: no command runs (the deploys' secrets triggers are the digests the vars steps
    # reported after generating, which is what the repository now holds: graph.deploy.secrets_trigger)
    second = up()
    assert second.ran() == [], f"nothing changed, yet ran: {summary(second)}"

    flake.set("web1", version="2")
    third = up()
    assert third.ran() == ["web1-deploy"]
    assert hosts[1].current_system() == flake.out_path("web1") != old["web1"]
    assert [t.current_system() for t in (hosts[0], hosts[2])] == [flake.out_path("ctl"), flake.out_path("web2")]
    assert third.outputs["machines"]["web1"]["system"] == flake.out_path("web1")
    print(f"third apply: {summary(third)}; whole test {time.monotonic() - started:.1f} s")


def summary(result: ApplyResult) -> str:
    return ", ".join(f"{r.name} {r.operation} {r.duration:.1f}s" for r in result.runs) or "nothing ran"


def check_first_apply(
    first: ApplyResult, project: Path, hosts: list[FakeTarget], flake: FakeFlake, api: ControllerApi, age_key: str
) -> None:
    steps = [f"{m}-{s}" for m in MACHINES for s in ("vars", "deploy")]
    assert first.ran() == sorted([*steps, "zt-admit-web1", "zt-admit-web2", "zt-controller"])
    assert all(r.ok for r in first.runs)
    finished = [r.name for r in first.runs]
    for m in MACHINES:  # each deploy after its vars; the peers' deploys after the controller's (after=)
        assert finished.index(f"{m}-vars") < finished.index(f"{m}-deploy")
    assert finished.index("ctl-deploy") < min(finished.index("web1-deploy"), finished.index("web2-deploy"))
    assert finished.index("zt-admit-web1") < finished.index("zt-controller")

    store = VarsStore(project)
    for t in hosts:  # vars generated into the repository; the adopted host key kept
        assert (project / f"vars/per-machine/{t.name}/app/token/secret").is_file()
        public = store.public(GeneratorId("openssh", t.name), "ssh.id_ed25519.pub")
        assert public is not None and public.decode().strip() == t.host_public_key
        # deployed: the flake's system, with the machine's age key and activation secret uploaded
        assert t.current_system() == flake.out_path(t.name)
        assert first.outputs["machines"][t.name]["system"] == flake.out_path(t.name)
        assert (t.root / "var/lib/sops-nix/key.txt").is_file()
        uploaded = t.root / f"var/lib/sops-nix/activation/per-machine/{t.name}/app/token"
        assert uploaded.read_bytes() == store.secret(GeneratorId("app", t.name), "token", [age_key])

    network = store.public(GeneratorId("zerotier-network-zt", None), "network-id")
    assert network is not None and first.outputs["zerotier"]["zt"]["network_id"] == network.decode()
    # each member's address, whose last 10 hex digits are its member id
    members = {m: store.public(GeneratorId(f"zerotier-ip-{m}-zt", None), "ip") for m in MACHINES}
    admitted = {p["path"].rsplit("/", 1)[1] for p in api.posts}
    assert {p["auth"] for p in api.posts} == {TOKEN} and all(p["body"] == {"authorized": True} for p in api.posts)
    assert all(p["path"].startswith(f"/controller/network/{network.decode()}/member/") for p in api.posts)
    assert admitted == {member_id(ip.decode()) for ip in members.values() if ip is not None} and len(admitted) == 3
    assert first.outputs["zerotier"]["zt"]["members"] == {m: ip.decode() for m, ip in members.items() if ip}
