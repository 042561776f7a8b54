"""A deploy's secrets reach the target's secrets folder and nothing else (DESIGN §3, reference/deploy.md
§9.5). The secrets are real: the machine's age key and an activation secret of random bytes, made by
`fleet_sdk.vars.generate` in a fleet repository and read back as `fleet machine deploy` reads them
(fleet_sdk.deploy.sources.machine_secrets). After one deploy to a FakeTarget, each secret's bytes
(raw, lower-cased, hex and base64) are searched for in every argv and environment the runner saw, the
progress lines, the log records, this process's stdout and stderr, the result JSON, the whole target
but its secrets folder (its /nix store, the harness's calls log, sshd's log, /run, /tmp) and the temp
folders this machine gained during the deploy. The negative controls: the same search finds them in
the target's /var/lib/sops-nix, with the declared owner and modes, and on the upload's stdin."""

from __future__ import annotations

import base64
import grp
import json
import logging
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.deploy import DeployRequest, DeploySettings, deploy_machine
from fleet_sdk.deploy.sources import machine_secrets
from fleet_sdk.sops.tree import KeyEntry, SopsTree
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine
from fleet_sdk.testing import FakeFlake, FakeSystem, FakeTargets, RecordingRunner, nix_env
from fleet_sdk.testing.targethost import CALLS_LOG, missing_requirements
from fleet_sdk.tools.runner import LOCAL
from fleet_sdk.vars.generate import GenerateOptions, generate

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_requirements()), reason="; ".join(missing_requirements())),
]

# the production deadlines but a short poll, so the test waits little; nothing else differs
SETTINGS = DeploySettings(poll_interval=0.1)
ROOT = SETTINGS.secrets_root
TOKEN_PATH = f"{ROOT}/activation/per-machine/web1/canary/token"  # clan's upload tree (sources.machine_secrets)
TOKEN_MODE, TOKEN_GROUP = 0o440, "adm"  # not the defaults, so the archive visibly carries them
# The temp folders a leak could land in on this machine (the private folders are in /dev/shm or the
# temp folder, fleet_sdk.fs.private).
TEMP_ROOTS = {Path(p).resolve() for p in ("/tmp", "/dev/shm", "/var/tmp", tempfile.gettempdir()) if Path(p).is_dir()}


def _canary(inputs: dict[str, dict[str, bytes]], prompts: dict[str, str], out: Path) -> None:
    # random bytes, NUL and newlines included: binary must not leak either
    (out / "token").write_bytes(b"\0leak-canary\n" + os.urandom(32))


FLEET = Fleet(
    name="leaks",
    machines=(
        Machine(
            name="web1",
            generators=(
                Generator(
                    name="canary",
                    python=_canary,
                    files=(GeneratorFile(name="token", needed_for="activation", group=TOKEN_GROUP, mode="0440"),),
                ),
            ),
        ),
    ),
)


def needles(secrets: dict[str, bytes]) -> dict[str, bytes]:
    """Every form a secret could leak in: as it is, lower-cased (bech32 age keys are case-free), hex
    and base64 (what a JSON or log writer would turn bytes into)."""
    out = {}
    for name, value in secrets.items():
        value = value.strip()
        assert len(value) >= 32, f"{name} is too short to search for"
        forms = {"raw": value, "hex": value.hex().encode(), "base64": base64.b64encode(value)}
        if value.lower() != value:
            forms["lower"] = value.lower()
        out.update({f"{name} ({form})": data for form, data in forms.items()})
    return out


def found_in(data: bytes, wanted: dict[str, bytes]) -> list[str]:
    return [name for name, needle in wanted.items() if needle in data]


def files_under(folder: Path, skip: Path | None = None) -> Iterator[Path]:
    """Regular files and links below `folder` (links not followed), `skip` left out; entries that
    vanish meanwhile (other processes' temp files) are passed over."""
    for top, dirs, files in os.walk(folder, onerror=lambda e: None):
        if skip is not None:
            dirs[:] = [d for d in dirs if Path(top, d) != skip]
        for name in files:
            yield Path(top, name)
        for name in dirs:
            if Path(top, name).is_symlink():
                yield Path(top, name)


def scan(paths: Iterable[Path], wanted: dict[str, bytes]) -> dict[str, list[str]]:
    """{file: the needles in it (in its bytes, or in the target of a link)}."""
    hits = {}
    for path in paths:
        try:
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        except OSError:  # gone, or a socket or fifo
            continue
        if found := found_in(data, wanted):
            hits[str(path)] = found
    return hits


def temp_entries() -> set[Path]:
    return {entry for root in TEMP_ROOTS for entry in root.iterdir()}


def make_repo(root: Path) -> tuple[Path, str]:
    """A fleet repository with an admin age key; returns it and the admin's identity."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    identity, public = sops.generate()
    SopsTree(root).write_keys("users", "admin", [KeyEntry(public)])
    return root, identity


@pytest.fixture
def nix_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIX_CONFIG", nix_env()["NIX_CONFIG"])  # the engine's `nix copy` reads it


def test_secrets_reach_the_secrets_folder_and_nothing_else(
    tmp_path: Path,
    target_hosts: FakeTargets,
    nix_config: None,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    repo, admin = make_repo(tmp_path / "repo")
    generate(repo, FLEET, GenerateOptions(identities=[admin]))
    secrets = machine_secrets(repo, FLEET, "web1", [admin], ROOT)
    assert sorted(secrets) == sorted([f"{ROOT}/key.txt", TOKEN_PATH])
    key, token = secrets[f"{ROOT}/key.txt"], secrets[TOKEN_PATH]
    assert key.data.startswith(b"AGE-SECRET-KEY-1") and (key.owner, key.mode) == ("root", 0o600)
    assert token.data.startswith(b"\0leak-canary\n") and (token.group, token.mode) == (TOKEN_GROUP, TOKEN_MODE)
    wanted = needles({"age key": key.data, "activation token": token.data})

    flake = FakeFlake(tmp_path / "flake", {"web1": FakeSystem(version="1")})
    old = flake.build("web1")
    t = target_hosts.new("web1")
    t.install(old)
    flake.set("web1", version="2")
    new = flake.build("web1")
    request = DeployRequest(
        "web1", t.target, new, host_key=t.host_public_key, identity_file=t.client_key, secrets=secrets
    )
    runner = RecordingRunner(delegate=LOCAL)
    lines: list[str] = []
    capfd.readouterr()  # what the setup printed is not the deploy's
    before = temp_entries()
    with caplog.at_level(logging.DEBUG):
        result = deploy_machine(request, SETTINGS, runner, lambda machine, line: lines.append(f"[{machine}] {line}"))
    gained = temp_entries() - before
    out, err = capfd.readouterr()
    assert result.status == "deployed", result.error

    # the negative controls: the secrets are on the target as declared, and the search finds them there
    on_target = t.path(f"{ROOT}/key.txt")
    assert on_target.read_bytes() == key.data
    st = on_target.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)
    st = t.path(TOKEN_PATH).stat()
    assert t.path(TOKEN_PATH).read_bytes() == token.data
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (TOKEN_MODE, 0, grp.getgrnam(TOKEN_GROUP).gr_gid)
    hits = scan(files_under(t.path(ROOT)), wanted)
    assert {Path(p).name: names for p, names in hits.items()} == {
        "key.txt": ["age key (raw)"],
        "token": ["activation token (raw)"],
    }
    uploads = [c for c in runner.calls if c.input and found_in(c.input, wanted)]
    assert len(uploads) == 1  # stdin of the one upload, the only way secrets travel

    # every argv and environment the runner saw
    for call in runner.calls:
        words = [*call.argv, *(f"{k}={v}" for k, v in (call.env or {}).items())]
        assert not found_in(b"\0".join(os.fsencode(w) for w in words), wanted), call.argv
    assert any(c.argv[0] == "nix" for c in runner.calls) and len(runner.calls) >= 8  # the whole deploy was seen

    # the engine's progress lines, its log records (each command it ran), stdout, stderr, the result
    assert any("uploading 2 secret file(s)" in line for line in lines)
    assert any(r.name == "fleet_sdk.run" for r in caplog.records)
    said = "\n".join([*lines, *(r.getMessage() for r in caplog.records), out, err, json.dumps(result.to_json())])
    assert not found_in(os.fsencode(said), wanted)

    # the target: its store, the harness's calls log by name, then all of it but the secrets folder
    assert not scan(files_under(t.path("/nix/store")), wanted)
    assert t.calls() and not found_in(t.path(CALLS_LOG).read_bytes(), wanted)
    assert not scan(files_under(t.root, skip=t.path(ROOT)), wanted)
    assert not scan(files_under(t.path("/run")), wanted)
    assert not list(t.root.glob("var/lib/sops-nix.fleet-*"))  # the upload's staging folders went

    # this machine's temp folders: whatever appeared during the deploy (other processes' entries too)
    assert not scan((f for entry in gained for f in ([entry] if entry.is_file() else files_under(entry))), wanted)
    assert not [e for e in gained if e.name.startswith(f"fleet-deploy-{os.getpid()}-")]  # known_hosts folder went
