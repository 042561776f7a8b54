from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_sdk.spec import Fleet
from fleet_sdk.stack.settings import StackSettings, load_fleet, load_stack_config
from fleet_sdk.vars.deploykey import DEPLOY_KEY_PUBLIC

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


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The closure probe caches under $XDG_CACHE_HOME for flakes outside git, installs keep their
    checkpoints under $XDG_STATE_HOME: the tests' `fleet` runs (and their subprocesses, which inherit
    the environment) keep both in the session's temp folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        mp.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
        yield


@pytest.fixture
def fleet_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fleet repository with the deploy key and the prod stack's provider secrets, which the
    operator (SOPS_AGE_KEY, also for child processes) can open."""
    from .cloud_fixtures import make_cloud_repo

    repo = make_cloud_repo(tmp_path / "fleet-repo")
    repo.as_operator(monkeypatch, repo.alice)
    return repo.path


def prod_config(**overrides: str) -> dict[str, str]:
    """The prod stack's config as Pulumi hands it to the program (Pulumi.prod.yaml), overridden."""
    return {**load_stack_config(PROJECT, "prod").values, **overrides}


def prod_settings(repo: Path) -> StackSettings:
    """The prod stack's settings from Pulumi.prod.yaml, with `repo` as the fleet repository."""
    return StackSettings.from_values(prod_config(**{"fleet:repo": str(repo)}), PROJECT)


@pytest.fixture
def settings(fleet_repo: Path) -> StackSettings:
    return prod_settings(fleet_repo)


def prod_fleet(overrides: list[str] | None = None) -> Fleet:
    config = load_stack_config(PROJECT, "prod", overrides or [])
    return load_fleet(PROJECT, "prod", StackSettings.from_values(config.values, PROJECT))


def prod_everyone() -> Fleet:
    """The prod stack with every machine enabled (the stack config switches some off), so graph
    tests see every kind of resource."""
    fleet = prod_fleet()
    return fleet.with_enabled(fleet.names)


@pytest.fixture
def prod() -> Fleet:
    return prod_everyone()
