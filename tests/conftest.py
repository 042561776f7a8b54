from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fleet_sdk.deploykey import DEPLOY_KEY_PUBLIC
from fleet_sdk.spec import Fleet
from fleet_sdk.stackconfig import StackSettings, load_fleet, load_stack_config

PROJECT = Path(__file__).resolve().parent.parent


def make_deploy_key(repo: Path) -> str:
    """A real ed25519 key pair made by ssh-keygen; its public half where the vars store puts it."""
    assert shutil.which("ssh-keygen"), "ssh-keygen is required (Debian package openssh-client)"
    keydir = repo / ".keys"
    keydir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(keydir / "id")], check=True)
    public = (keydir / "id.pub").read_text()
    target = repo / DEPLOY_KEY_PUBLIC
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(public)
    return public.strip()


@pytest.fixture
def fleet_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "fleet-repo"
    make_deploy_key(repo)
    return repo


@pytest.fixture
def settings(fleet_repo: Path) -> StackSettings:
    return StackSettings(repo=fleet_repo)


def prod_fleet(overrides: list[str] | None = None) -> Fleet:
    config = load_stack_config(PROJECT, "prod", overrides or [])
    return load_fleet(PROJECT, "prod", StackSettings.from_values(config.values, PROJECT))


@pytest.fixture
def prod() -> Fleet:
    return prod_fleet()
