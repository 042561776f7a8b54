"""Every secret file of the store is 0600 in a 0700 folder, after generate, regenerate, set and fix;
public values stay readable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .vars_project import fleet_cli, make_project

STACK = """
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine
from fleet_sdk.vars import stock as builtins
def build(settings):
    svc = Generator(name="svc", files=(GeneratorFile(name="s"), GeneratorFile(name="p", secret=False)),
                    script='echo s3cret > "$out/s"; echo public > "$out/p"')
    shared = Generator(name="ca", share=True, files=(GeneratorFile(name="key", deploy=False),), script='echo k > "$out/key"')
    return Fleet(name="demo", machines=(Machine(name="web", generators=(svc, shared, builtins.openssh())),
                                        Machine(name="db", generators=(shared,))))
"""


def modes(repo: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(mode of every `secret` file, mode of every folder holding one), relative paths."""
    files, dirs = [], []
    for top in (repo / "vars", repo / "sops" / "secrets"):
        for dirpath, _dirs, names in os.walk(top):
            if "secret" in names:
                rel = os.path.relpath(dirpath, repo)
                files.append((rel, stat.S_IMODE(os.lstat(os.path.join(dirpath, "secret")).st_mode)))
                dirs.append((rel, stat.S_IMODE(os.stat(dirpath).st_mode)))
    return files, dirs


def assert_private(repo: Path) -> None:
    files, dirs = modes(repo)
    assert len(files) >= 4  # svc/s, ca/key, web's openssh key and age key
    assert [f for f in files if f[1] != 0o600] == []
    assert [d for d in dirs if d[1] != 0o700] == []
    value = repo / "vars/per-machine/web/svc/p/value"
    assert stat.S_IMODE(value.stat().st_mode) & 0o444 == 0o444  # public values are readable


def test_secrets_are_private_after_every_writer(tmp_path: Path) -> None:
    root, env = make_project(tmp_path / "fleet", STACK)
    # the CLI runs with a user's usual umask 022: files are 0644 unless written 0600 on purpose
    previous = os.umask(0o022)
    try:
        _every_writer(root, env)
    finally:
        os.umask(previous)


def _every_writer(root: Path, env: dict[str, str]) -> None:
    assert fleet_cli(root, env, "vars", "generate").returncode == 0
    assert_private(root)
    assert fleet_cli(root, env, "vars", "generate", "--regenerate").returncode == 0
    assert_private(root)
    out = fleet_cli(root, env, "vars", "set", "web", "svc/s", stdin=b"n3w")
    assert out.returncode == 0, out.stderr.decode()
    assert_private(root)
    os.unlink(root / "vars/per-machine/web/svc/s/users/admin")  # something to re-key
    assert fleet_cli(root, env, "vars", "fix").returncode == 0
    assert_private(root)
