"""A repository laid out by clan (real sops documents from clan-core with their published test keys)
is read by `fleet vars list/get/check` and left exactly as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from .sops_fixtures import FIXTURES, PEER1_KEY
from .vars_project import snapshot

TEST_KEY_FILE = FIXTURES / "keys" / "clan-core-test-age-key.txt"
ADMIN_PUB = "age1qm0p4vf9jvcnn43s6l4prk8zn6cx0ep9gzvevxecv729xz540v8qa742eg"
PEER1_PUB = "age12w2ld4vxfyf3hdq2d8la4cu0tye4pq97egvv3me4wary7xkdnq2snh0zx2"
ADMIN1_PUB = "age12yt078p9ewxy2sh0a36nxdpgglv8wqqftmj4dkj9rgy5fuyn4p0q5nje9m"


def key_json(key: str) -> str:
    # byte-for-byte as clan writes it (json.dump indent=2, no final newline)
    return f'[\n  {{\n    "publickey": "{key}",\n    "type": "age"\n  }}\n]'


def link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def clan_repo(root: Path) -> Path:
    for kind, name, key in (
        ("users", "admin", ADMIN_PUB),
        ("machines", "peer1", PEER1_PUB),
        ("machines", "admin1", ADMIN1_PUB),
    ):
        (root / "sops" / kind / name).mkdir(parents=True)
        (root / "sops" / kind / name / "key.json").write_text(key_json(key))
    docs = FIXTURES / "clan-core"
    age_key = root / "sops/secrets/peer1-age.key"
    age_key.mkdir(parents=True)
    shutil.copy(docs / "v3.10.2-binary-peer1-age-key.json", age_key / "secret")
    link(age_key / "users/admin", "../../../users/admin")
    a_secret = root / "vars/per-machine/peer1/new-service/a-secret"
    a_secret.mkdir(parents=True)
    shutil.copy(docs / "v3.10.2-binary-a-secret.json", a_secret / "secret")
    link(a_secret / "machines/peer1", "../../../../../../sops/machines/peer1")
    link(a_secret / "users/admin", "../../../../../../sops/users/admin")
    public = root / "vars/per-machine/peer1/new-service/a-public/value"
    public.parent.mkdir(parents=True)
    public.write_bytes(b"hello world")
    password = root / "vars/per-machine/admin1/dummy-generator/generated-password"
    password.mkdir(parents=True)
    shutil.copy(docs / "v3.10.2-binary-generated-password.json", password / "secret")
    link(password / "machines/admin1", "../../../../../../sops/machines/admin1")
    link(password / "users/admin", "../../../../../../sops/users/admin")
    return root


STACK = """
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine

def build(settings):
    service = Generator(name="new-service", files=(GeneratorFile(name="a-secret"), GeneratorFile(name="a-public", secret=False)),
                        script="true")
    dummy = Generator(name="dummy-generator", files=(GeneratorFile(name="generated-password"),), script="true")
    return Fleet(name="clan", machines=(Machine(name="peer1", generators=(service,)), Machine(name="admin1", generators=(dummy,))))
"""


def run(project: Path, repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(TEST_KEY_FILE)}
    env.pop("SOPS_AGE_KEY", None)
    argv = [sys.executable, "-m", "fleet_sdk", *args, "--project", str(project), "--stack", "dev", "--repo", str(repo)]
    return subprocess.run(argv, capture_output=True, env=env, check=False)


def test_a_clan_repository_is_read_unchanged(tmp_path: Path) -> None:
    repo = clan_repo(tmp_path / "clan")
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: clanfleet\nruntime: python\n")
    (project / "Pulumi.dev.yaml").write_text("config: {}\n")
    (project / "stacks/dev.py").write_text(textwrap.dedent(STACK))
    before = snapshot(repo)

    listing = run(project, repo, "vars", "list", "peer1")
    assert listing.returncode == 0, listing.stderr.decode()
    assert listing.stdout.decode().splitlines() == [
        "new-service/a-public: hello world",
        "new-service/a-secret: ********",
    ]
    assert run(project, repo, "vars", "get", "peer1", "new-service/a-secret").stdout == b"a-secret"
    assert run(project, repo, "vars", "get", "admin1", "dummy-generator/generated-password").stdout == b"2550\n"
    assert run(project, repo, "vars", "get", "peer1", "new-service/a-p").stdout == b"hello world"  # unique prefix
    check = run(project, repo, "vars", "check")
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    # the machine's own age key (in sops/secrets/peer1-age.key) opens its secret too
    from fleet_sdk import sops
    from fleet_sdk.sops.tree import SopsTree

    assert SopsTree(repo).machine_private_key("peer1", [TEST_KEY_FILE.read_text()]) == PEER1_KEY
    assert (
        sops.decrypt((repo / "vars/per-machine/peer1/new-service/a-secret/secret").read_bytes(), [PEER1_KEY])
        == b"a-secret"
    )
    # nothing to generate: every declared file exists, so a generate run writes nothing either
    generate = run(project, repo, "vars", "generate")
    assert generate.returncode == 0, generate.stderr.decode()
    assert snapshot(repo) == before
