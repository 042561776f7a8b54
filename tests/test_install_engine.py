"""`fleet machine install` end to end against a target host (fleet_sdk.testing.targethost) with the
nixos-anywhere shim on PATH: a fresh install phase by phase, resuming after a killed run, adopting
an installed machine with nothing run, refusing to wipe it for a changed layout (and reinstalling with
reinstall=True), refusing a host key after the reboot other than the one in vars, and no secret in
argv, logs or files left behind.

Needs root, sshd, util-linux, nix (nix-bin) and bubblewrap; with CI=true a missing one fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.fs import private
from fleet_sdk.install.target import fingerprint
from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.testing import FakeFlake, FakeSystem, FakeTarget, FakeTargets, nix_env
from fleet_sdk.testing.targethost import FACTER_REPORT, keygen, write_nixos_anywhere_shim
from fleet_sdk.vars.store import GeneratorId, VarsStore

from .test_install_harness import (
    _requirements,  # noqa: F401 (autouse: CI=true fails when a tool is missing)
    strict_ssh,
)
from .vars_project import fleet_cli, make_project

pytestmark = pytest.mark.integration

STACK = """
from fleet_sdk.disko.layouts import ext4_root
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine
from fleet_sdk.vars import stock

APP = Generator(name="app", files=(GeneratorFile(name="token", needed_for="activation"),),
                script="head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > $out/token")

def build(settings):
    return Fleet(name="demo", machines=(
        Machine(name="web", disks=ext4_root("{device}", boot="bios"), reinstall={reinstall},
                generators=(stock.openssh(), stock.deploy_key(), stock.disk_passphrase("disk", "key"), APP)),
        Machine(name="mac", machine_class="darwin"),
    ))
"""


@dataclass
class Site:
    project: Path
    env: dict[str, str]
    flake: FakeFlake
    log: Path
    target: FakeTarget | None = None
    secrets: dict[str, bytes] = field(default_factory=dict)  # name -> plaintext that must never leak

    @property
    def host(self) -> FakeTarget:
        assert self.target is not None
        return self.target

    def stack(self, device: str = "/dev/sda", reinstall: bool = False) -> None:
        body = STACK.format(device=device, reinstall=reinstall)
        (self.project / "stacks" / "dev.py").write_text(textwrap.dedent(body))

    def argv(self, *args: str) -> list[str]:
        return ["machine", "install", "web", "--target-host", self.host.target, "--json", "--timeout", "20", *args]

    def install(self, *args: str) -> tuple[subprocess.CompletedProcess[bytes], dict[str, Any]]:
        done = fleet_cli(self.project, self.env, *self.argv(*args))
        try:
            result = json.loads(done.stdout)["web"]
        except (ValueError, KeyError):
            result = {}
        return done, result

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def var(self, name: str) -> bytes:
        """A var as `fleet vars get web NAME` prints it (read here: a CLI run per var costs a second)."""
        generator, file = name.split("/")
        gid = GeneratorId(generator, None if generator == "deploy-key" else "web")
        store = VarsStore(self.project)
        return store.public(gid, file) or store.secret(gid, file, [self.env["SOPS_AGE_KEY"]])


@pytest.fixture
def site(tmp_path: Path, target_hosts: FakeTargets) -> Site:
    flake = FakeFlake(tmp_path / "flake", {"web": FakeSystem(version="1")})
    project, env = make_project(tmp_path / "fleet", "")
    (project / "Pulumi.dev.yaml").write_text(f"config:\n  fleet:flake: {flake.ref}\n")
    log = tmp_path / "nixos-anywhere.jsonl"
    shim = write_nixos_anywhere_shim(tmp_path / "bin", log, timeout=20)
    env |= nix_env() | {"PATH": f"{shim.parent}:{os.environ['PATH']}", "XDG_STATE_HOME": str(tmp_path / "state")}
    s = Site(project, env, flake, log)
    s.stack()
    done = fleet_cli(project, env, "vars", "generate")
    assert done.returncode == 0, done.stderr.decode()
    # the server lets the fleet's deploy key in, as the cloud's ssh key resource makes it do
    deploy_key = tmp_path / "deploy_key"
    deploy_key.write_bytes(s.var("deploy-key/id_ed25519"))
    deploy_key.chmod(0o600)
    Path(f"{deploy_key}.pub").write_bytes(s.var("deploy-key/id_ed25519.pub"))
    s.target = target_hosts.new("web", os_kind="debian", client_key=deploy_key, reboot_delay=0.05)
    s.secrets = {
        "host key": s.var("openssh/ssh.id_ed25519"),
        "deploy key": deploy_key.read_bytes(),
        "disk key": s.var("disk/key"),
        "app token": s.var("app/token"),
        "age key": SopsTree(project).machine_private_key("web", [env["SOPS_AGE_KEY"]]).encode(),
    }
    assert all(s.secrets.values())
    return s


def host_key(site: Site) -> str:
    return (site.project / "vars/per-machine/web/openssh/ssh.id_ed25519.pub/value").read_text().strip()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tracked(repo: Path) -> set[str]:
    out = subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def leftovers() -> list[Path]:
    """RAM folders of installs whose process is gone (a live one may be another test's, run alongside)."""
    return sorted(
        p for p in private.base().glob("fleet-install-*") if not Path(f"/proc/{p.name.split('-')[2]}").exists()
    )


def assert_installed(site: Site, result: dict[str, Any]) -> None:
    t = site.host
    assert result["status"] == "installed" and result["error"] is None
    assert result["system"] == site.flake.out_path("web") == t.current_system() == t.booted_system()
    assert result["host_key_fingerprint"] == fingerprint(host_key(site))
    assert t.host_public_key == host_key(site).split()[0] + " " + host_key(site).split()[1]
    key = t.path("/var/lib/sops-nix/key.txt")
    assert key.read_bytes() == site.secrets["age key"] and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert t.path("/var/lib/sops-nix/activation/per-machine/web/app/token").read_bytes() == site.secrets["app token"]
    assert json.loads(t.path("/var/lib/fleet/install.json").read_text())["machine"] == "web"


def assert_no_leak(site: Site, *outputs: subprocess.CompletedProcess[bytes]) -> None:
    """No plaintext in argv (the shim's log records every argv), output, the repository outside the
    sops documents, the target's store, its call log, or the RAM folders (gone)."""
    texts = {"nixos-anywhere log": site.log.read_bytes() if site.log.exists() else b""}
    for n, done in enumerate(outputs):
        texts[f"output {n}"] = done.stdout + done.stderr
    for path in site.project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            texts[str(path.relative_to(site.project))] = path.read_bytes()
    store = site.host.root / "nix/store"
    for path in store.rglob("*") if store.is_dir() else ():
        if path.is_file() and not path.is_symlink():
            texts[f"target {path.relative_to(store)}"] = path.read_bytes()
    calls = site.host.path("/var/log/fleet-harness/calls.jsonl")
    texts["target calls"] = calls.read_bytes() if calls.exists() else b""
    for name, secret in site.secrets.items():
        body = secret.strip().splitlines()[1 if secret.startswith(b"-----") else 0]
        for where, text in texts.items():
            assert body not in text, f"the {name} is in {where}"
    assert leftovers() == []


def test_a_fresh_server_is_installed_phase_by_phase_then_adopted(site: Site) -> None:
    done, result = site.install()
    assert done.returncode == 0, done.stderr.decode()
    assert result["phases"] == ["kexec", "disko", "install", "reboot"]
    assert_installed(site, result)
    runs = site.records()
    assert [r["phases"] for r in runs] == [["kexec"], ["disko"], ["install"], ["reboot"]]
    assert all(r["result"] == "ok" and r["identity_mode"] == "600" for r in runs)
    assert runs[0]["target"] == "root@127.0.0.1" and all("--flake" in r["argv"] for r in runs)
    # disk keys go to disko only, the extra files to install only, each as the vars hold them
    disko, install = runs[1], runs[2]
    assert disko["disk_keys"] == {
        "/run/partitioning-secrets/disk/key": {"mode": "600", "sha256": sha256(site.secrets["disk key"])}
    }
    assert runs[0]["extra_files"] == disko["extra_files"] == {} and install["disk_keys"] == {}
    files = install["extra_files"]
    assert files["var/lib/sops-nix/key.txt"] == {"mode": "600", "sha256": sha256(site.secrets["age key"]),
                                                 "size": len(site.secrets["age key"])}  # fmt: skip
    assert files["etc/ssh/ssh_host_ed25519_key"]["sha256"] == sha256(site.secrets["host key"])
    assert files["etc/ssh/ssh_host_ed25519_key.pub"]["mode"] == "644"
    # before evaluation: the layout and the hardware report, tracked
    repo = site.project
    assert {
        "machines/web/disko.json",
        "machines/web/facter.json",
        "machines/web/install.json",
        "known_hosts",
    } <= tracked(repo)
    assert json.loads((repo / "machines/web/facter.json").read_text())["version"] == FACTER_REPORT["version"]
    assert (repo / "known_hosts").read_text() == f"[127.0.0.1]:{site.host.port} {host_key(site)} fleet:web\n"
    assert strict_ssh(site.host, repo / "known_hosts").returncode == 0  # the user's ssh takes the file
    assert not list((Path(site.env["XDG_STATE_HOME"]) / "fleet/install").glob("*.json"))  # checkpoint gone
    # the installed machine is adopted: nothing runs
    again, adopted = site.install()
    assert again.returncode == 0, again.stderr.decode()
    assert adopted == {**result, "status": "adopted", "phases": []}
    assert len(site.records()) == 4 and site.host.current_system() == result["system"]
    assert_no_leak(site, done, again)


def test_a_run_killed_in_the_install_phase_resumes_there(site: Site) -> None:
    argv = [sys.executable, "-m", "fleet_sdk", *site.argv(), "--project", str(site.project), "--stack", "dev"]
    env = site.env | {"FLEET_NIXOS_ANYWHERE_STALL": "install"}
    proc = subprocess.Popen(argv, env=env, cwd=site.project, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while [r["phases"] for r in site.records()] != [["kexec"], ["disko"]]:
            assert time.monotonic() < deadline and proc.poll() is None, site.records()
            time.sleep(0.1)
        time.sleep(0.5)  # into the install phase's nixos-anywhere
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert leftovers()  # SIGKILL runs no cleanup: its RAM folder is still there …
    done, result = site.install()
    assert done.returncode == 0, done.stderr.decode()
    assert b"resuming at the install phase (kexec, disko done before)" in done.stderr
    assert result["phases"] == ["install", "reboot"]
    assert [r["phases"] for r in site.records()] == [["kexec"], ["disko"], ["install"], ["reboot"]]
    assert_installed(site, result)
    assert_no_leak(site, done)  # … which the next run removes


def test_a_changed_layout_is_refused_then_reinstalled_with_reinstall_true(site: Site) -> None:
    done, _ = site.install()
    assert done.returncode == 0, done.stderr.decode()
    site.stack(device="/dev/vda")
    refused, result = site.install()
    assert refused.returncode == 1 and result["status"] == "failed"
    assert b"error: machine web: it is installed with another disk layout" in refused.stderr
    assert b"set reinstall=True on the machine" in refused.stderr
    assert len(site.records()) == 4  # nothing ran
    site.stack(device="/dev/vda", reinstall=True)
    again, result = site.install()
    assert again.returncode == 0, again.stderr.decode()
    assert result["phases"] == ["kexec", "disko", "install", "reboot"]
    assert_installed(site, result)
    marker = json.loads(site.host.path("/var/lib/fleet/install.json").read_text())
    assert marker["layout"] == json.loads((site.project / "machines/web/install.json").read_text())["layout"]
    assert '"/dev/vda"' in (site.project / "machines/web/disko.json").read_text()


def test_another_host_key_after_the_reboot_is_refused(site: Site, tmp_path: Path) -> None:
    done, result = site.install("--phases", "kexec,disko,install")
    assert done.returncode == 0, done.stderr.decode()
    assert result["status"] == "partial" and result["phases"] == ["kexec", "disko", "install"]
    # the installed system brings a host key of its own (as a configuration that makes one would)
    stranger = keygen(tmp_path / "stranger" / "key")
    site.host.run(["cp", "/dev/stdin", "/mnt/etc/ssh/ssh_host_ed25519_key"], input=stranger.read_text())
    site.host.run(["cp", "/dev/stdin", "/mnt/etc/ssh/ssh_host_ed25519_key.pub"],
                  input=Path(f"{stranger}.pub").read_text())  # fmt: skip
    refused, result = site.install("--phases", "reboot")
    assert refused.returncode == 1 and result["status"] == "failed"
    assert f"error: machine web: {site.host.target} presented".encode() in refused.stderr
    assert b"presented an ssh host key other than the machine's" in refused.stderr
    assert not (site.project / "known_hosts").exists()  # nothing recorded for a machine not proven
    assert leftovers() == []  # the RAM folder goes on failure too


def test_bad_input_is_refused_naming_the_machine(site: Site) -> None:
    darwin = fleet_cli(site.project, site.env, "machine", "install", "mac", "--target-host", "root@127.0.0.1")
    assert darwin.returncode == 1 and b"error: machine mac: is a darwin machine" in darwin.stderr
    phase = fleet_cli(site.project, site.env, *site.argv("--phases", "kexec,partition"))
    assert (
        phase.returncode == 1 and b"error: machine web: --phases kexec,partition: no phase 'partition'" in phase.stderr
    )
    site.host.stop()
    started = time.monotonic()
    down = fleet_cli(site.project, site.env, *site.argv("--timeout", "2"))
    assert down.returncode == 1 and time.monotonic() - started < 20
    assert (
        b"error: machine web: no answer over ssh from root@127.0.0.1:" in down.stderr and b"within 2 s" in down.stderr
    )
    assert b"Traceback" not in darwin.stderr + phase.stderr + down.stderr
    assert site.records() == [] and leftovers() == []
