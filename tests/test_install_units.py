"""The install engine's parts without a server: host key fingerprints and fields, the facts a target
prints, the checkpoint, the repository records, the private extra-files folder, the decisions that
adopt or refuse to wipe, the phases left to run, and the request built from a fleet's vars."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from fleet_sdk.deploy.model import SecretFile
from fleet_sdk.errors import ConfigError, InstallError, WipeRefusedError
from fleet_sdk.install import InstallRequest, InstallSettings, TargetFacts, extrafiles, records
from fleet_sdk.install.checkpoint import Checkpoint
from fleet_sdk.install.engine import _Install
from fleet_sdk.install.sources import install_request
from fleet_sdk.install.target import fingerprint, key_fields, parse_facts
from fleet_sdk.spec import Fleet, Machine
from fleet_sdk.targets import TargetHost
from fleet_sdk.tools.runner import LOCAL

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHj7dPvZl1RuO8r0J9mmhC2lT8kkwhVGn3+Ny4xYdfTp"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1Gbq7mHyy7vPjk3TxkP7Lr6F7Tq1lU8h3+8NnQpXo"


def request(tmp_path: Path, **changes: object) -> InstallRequest:
    base: dict[str, object] = {
        "machine": "web",
        "target": "root@192.0.2.7",
        "flake": "/fleet",
        "repo": tmp_path,
        "host_key": KEY + " root@web",
        "layout": '{"disk": {}}\n',
    }
    return InstallRequest(**(base | changes))  # type: ignore[arg-type]


def engine(req: InstallRequest) -> _Install:
    return _Install(req, InstallSettings(), LOCAL, None)


def test_fingerprint_is_the_one_ssh_keygen_shows(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text(KEY + " comment\n")
    shown = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True)
    assert shown.stdout.split()[1] == fingerprint(KEY + " comment") == fingerprint(KEY)
    assert fingerprint(KEY) != fingerprint(OTHER)


def test_key_fields_of_public_key_and_known_hosts_lines() -> None:
    assert key_fields(KEY + " root@web") == KEY
    assert key_fields(f"[127.0.0.1]:2222 {KEY}") == KEY
    assert key_fields(f"|1|c2FsdA==|aGFzaA== {KEY} fleet:web") == KEY
    assert key_fields("not a key") == "" and key_fields("") == ""


def test_facts_as_the_target_prints_them() -> None:
    text = (
        'os=nixos\nvariant=\nsystem=/nix/store/abc-nixos-system-web\nmarker={"layout": "sha256:1", "machine": "web"}\n'
    )
    facts = parse_facts(text, KEY)
    assert (facts.os, facts.system, facts.marker["layout"], facts.host_key) == (
        "nixos",
        "/nix/store/abc-nixos-system-web",
        "sha256:1",
        KEY,
    )
    assert facts.nixos and not facts.installer
    installer = parse_facts("os=nixos\nvariant=installer\nsystem=/nix/store/x\nmarker=oops\n")
    assert installer.installer and not installer.nixos and installer.marker == {}
    assert not parse_facts("os=debian\n").nixos and "debian" in parse_facts("os=debian\n").describe()


def test_checkpoint_resumes_only_the_same_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cp = Checkpoint.load(tmp_path, "web", "root@192.0.2.7", "sha256:1")
    assert cp.done == []
    cp.mark("kexec")
    cp.mark("disko")
    cp.mark("disko")
    assert stat.S_IMODE(cp.path.stat().st_mode) == 0o600 and stat.S_IMODE(cp.path.parent.stat().st_mode) == 0o700
    assert Checkpoint.load(tmp_path, "web", "root@192.0.2.7", "sha256:1").done == ["kexec", "disko"]
    assert Checkpoint.load(tmp_path, "web", "root@192.0.2.8", "sha256:1").done == []  # another server
    assert Checkpoint.load(tmp_path, "web", "root@192.0.2.7", "sha256:2").done == []  # another layout
    assert Checkpoint.load(tmp_path, "db", "root@192.0.2.7", "sha256:1").done == []
    cp.path.write_text("{broken")
    assert Checkpoint.load(tmp_path, "web", "root@192.0.2.7", "sha256:1").done == []
    cp.clear()
    assert not cp.path.exists()


def test_known_hosts_keeps_one_line_per_machine(tmp_path: Path) -> None:
    records.write_known_host(tmp_path, "web", TargetHost("root", "192.0.2.7"), KEY)
    records.write_known_host(tmp_path, "db", TargetHost("root", "127.0.0.1", 2222), OTHER)
    records.write_known_host(tmp_path, "web", TargetHost("root", "192.0.2.9"), KEY)
    lines = (tmp_path / "known_hosts").read_text().splitlines()
    assert lines == [f"[127.0.0.1]:2222 {OTHER} fleet:db", f"192.0.2.9 {KEY} fleet:web"]
    path = records.write_installed(tmp_path, "web", "sha256:1", fingerprint(KEY))
    assert records.installed(tmp_path, "web") == {"layout": "sha256:1", "host_key": fingerprint(KEY)}
    assert path == tmp_path / "machines/web/install.json" and records.installed(tmp_path, "db") is None
    with pytest.raises(InstallError, match="machine web: nixos-facter printed no JSON"):
        records.write_facter(tmp_path, "web", b"Error: not root\n")


def test_extra_files_modes_and_places(tmp_path: Path) -> None:
    ram = tmp_path / "ram"
    ram.mkdir(mode=0o700)
    secrets = {
        "/var/lib/sops-nix/key.txt": SecretFile(b"AGE-SECRET-KEY-1", mode=0o600),
        "/var/lib/sops-nix/activation/app/token": SecretFile(b"tok", "app", "app", 0o400),
    }
    req = request(tmp_path, secrets=secrets, host_key_pair=(b"PRIVATE", b"PUBLIC\n"),
                  disk_keys={"/run/partitioning-secrets/zfs/key": b"words"}, identity=b"DEPLOY")  # fmt: skip
    prepared = extrafiles.prepare(ram, req, "sha256:1")
    extra = prepared.extra

    def mode(rel: str) -> int:
        return stat.S_IMODE((extra / rel).stat().st_mode)

    assert mode(".") == 0o700  # the folder nixos-anywhere tars; its contents land on /
    assert mode("var") == mode("var/lib") == mode("etc") == mode("etc/ssh") == mode("var/lib/fleet") == 0o755
    assert (
        mode("var/lib/sops-nix")
        == mode("var/lib/sops-nix/activation")
        == mode("var/lib/sops-nix/activation/app")
        == 0o700
    )
    assert mode("var/lib/sops-nix/key.txt") == mode("var/lib/sops-nix/activation/app/token") == 0o600
    assert (extra / "var/lib/sops-nix/activation/app/token").read_bytes() == b"tok"
    assert mode("etc/ssh/ssh_host_ed25519_key") == 0o600 and mode("etc/ssh/ssh_host_ed25519_key.pub") == 0o644
    assert json.loads((extra / "var/lib/fleet/install.json").read_text()) == {"layout": "sha256:1", "machine": "web"}
    [disk] = prepared.disk_keys
    assert disk.remote == "/run/partitioning-secrets/zfs/key" and disk.local.read_bytes() == b"words"
    assert stat.S_IMODE(disk.local.stat().st_mode) == 0o600
    assert prepared.identity_file is not None and stat.S_IMODE(prepared.identity_file.stat().st_mode) == 0o600
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    assert extrafiles.prepare(other, request(tmp_path, identity_file=Path("/k")), None).identity_file == Path("/k")
    bad = tmp_path / "bad"
    bad.mkdir(mode=0o700)
    with pytest.raises(InstallError, match="machine web: extra file '/var/../etc/x' is not a normalised absolute"):
        extrafiles.prepare(bad, request(tmp_path, secrets={"/var/../etc/x": SecretFile(b"")}), None)


NIXOS = TargetFacts(os="nixos", system="/nix/store/a-nixos-system-web", marker={"layout": "sha256:1"}, host_key=KEY)


def test_the_machine_itself_is_adopted(tmp_path: Path) -> None:
    assert engine(request(tmp_path)).adopt(NIXOS, "sha256:1")
    unmarked = TargetFacts(os="nixos", system=NIXOS.system, host_key=KEY)  # installed by clan, say
    assert engine(request(tmp_path)).adopt(unmarked, "sha256:1")
    for facts in (
        TargetFacts(os="debian", host_key=KEY),
        TargetFacts(os="nixos", variant="installer", system="/x", host_key=KEY),
    ):
        assert not engine(request(tmp_path)).adopt(facts, "sha256:1")


def test_an_installed_nixos_is_never_wiped_unless_the_machine_allows_it(tmp_path: Path) -> None:
    stranger = TargetFacts(os="nixos", system=NIXOS.system, host_key=OTHER)
    with pytest.raises(
        WipeRefusedError, match=r"machine web: root@192.0.2.7 already runs NixOS .* not the machine's"
    ) as e:
        engine(request(tmp_path)).adopt(stranger, "sha256:1")
    assert fingerprint(OTHER) in str(e.value) and "reinstall=True" in str(e.value)
    with pytest.raises(WipeRefusedError, match="machine web: it is installed with another disk layout") as e:
        engine(request(tmp_path)).adopt(NIXOS, "sha256:2")
    assert "sha256:1" in str(e.value) and "sha256:2" in str(e.value)
    assert not engine(request(tmp_path, reinstall=True)).adopt(stranger, "sha256:1")
    assert not engine(request(tmp_path, reinstall=True)).adopt(NIXOS, "sha256:2")


def test_phases_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    debian, installer = TargetFacts(os="debian"), TargetFacts(os="nixos", variant="installer", system="/x")
    cp = Checkpoint.load(tmp_path, "web", "root@192.0.2.7", None)
    assert engine(request(tmp_path)).todo(debian, cp) == ["kexec", "disko", "install", "reboot"]
    assert engine(request(tmp_path)).todo(installer, cp) == ["disko", "install", "reboot"]  # no kexec into it again
    cp.mark("kexec")
    cp.mark("disko")
    assert engine(request(tmp_path)).todo(installer, cp) == ["install", "reboot"]  # resumes at install
    assert engine(request(tmp_path, phases=("disko",))).todo(installer, cp) == []
    # the server left the installer (rebooted): what the checkpoint says was done is gone with it
    assert engine(request(tmp_path)).todo(debian, cp) == ["kexec", "disko", "install", "reboot"]
    assert not cp.path.exists()
    with pytest.raises(InstallError, match="machine web: .* runs debian, not the installer; the disko phase needs"):
        engine(request(tmp_path, phases=("disko", "install"))).todo(debian, cp)


def test_requests_refuse_darwin_and_missing_keys(tmp_path: Path) -> None:
    fleet = Fleet(name="f", machines=(Machine(name="web"), Machine(name="mac", machine_class="darwin")))
    with pytest.raises(InstallError, match="machine mac: is a darwin machine"):
        install_request(fleet, tmp_path, "mac", target="root@x", flake=".", identities=[])
    with pytest.raises(
        InstallError, match=r"machine web: its ssh host key .* is not generated: run `fleet vars generate web`"
    ):
        install_request(fleet, tmp_path, "web", target="root@x", flake=".", identities=[])


def test_cli_phases_name_the_machine() -> None:
    from fleet_sdk.cli.install import phases

    assert phases("web", "reboot,kexec") == ("kexec", "reboot")  # nixos-anywhere's order
    with pytest.raises(
        ConfigError,
        match="machine web: --phases kexec,format: no phase 'format'; the phases are kexec,disko,install,reboot",
    ):
        phases("web", "kexec,format")
    with pytest.raises(ConfigError, match="machine web: --phases names no phase"):
        phases("web", ",")


def test_installs_side_by_side_keep_every_known_host(tmp_path: Path) -> None:
    """`pulumi up` runs the installs of several machines at once: their records go through the
    repository lock, so no known_hosts line is lost and git's index lock never collides."""
    from concurrent.futures import ThreadPoolExecutor

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    names = [f"m{i}" for i in range(4)]
    for round_ in range(5):
        target = TargetHost("root", f"192.0.2.{round_}")
        with ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(lambda n, t=target: engine(request(tmp_path, machine=n)).record(t, "d"), names))
        lines = (tmp_path / "known_hosts").read_text().splitlines()
        assert sorted(line.split()[-1] for line in lines) == [f"fleet:{n}" for n in names]
    done = subprocess.run(["git", "-C", str(tmp_path), "ls-files"], capture_output=True, text=True, check=True)
    assert set(done.stdout.split()) == {"known_hosts", *(f"machines/{n}/install.json" for n in names)}
