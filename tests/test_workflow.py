""".github/workflows/preview.yml: the pull-request review workflow (README, "Reviewing in pull
requests"). Its shape is checked as data; its offline steps run here, in order, on a copy of this
project in a two-commit git repository, as GitHub would run them on a fork's pull request."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import PROJECT

WORKFLOW = PROJECT / ".github" / "workflows" / "preview.yml"
FLEET = PROJECT / ".venv" / "bin" / "fleet"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = workflow["jobs"]["plan"]["steps"]
    return result


def index(workflow: dict[Any, Any], found: Any) -> int:
    """The position of the one step `found(step)` holds for."""
    hits = [i for i, s in enumerate(steps(workflow)) if found(s)]
    assert len(hits) == 1, hits
    return hits[0]


def test_it_runs_on_every_pull_request_with_only_the_token_it_needs(workflow: dict[Any, Any]) -> None:
    # YAML 1.1 reads the key `on` as true
    assert workflow[True] == "pull_request"  # forks included: no pull_request_target, no PR code with secrets
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    env = workflow["jobs"]["plan"]["env"]
    assert env["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    assert "GOOGLE_CREDENTIALS" in env and env["STACK"] == "prod"


def test_the_steps_in_order(workflow: dict[Any, Any]) -> None:
    def run(s: dict[str, Any]) -> str:
        return str(s.get("run", ""))

    checkout = index(workflow, lambda s: str(s.get("uses", "")).startswith("actions/checkout@"))
    assert steps(workflow)[checkout]["with"]["fetch-depth"] == 0  # the base commit must be there
    venv = index(workflow, lambda s: run(s) == "make .venv/.installed")
    creds = index(workflow, lambda s: s.get("id") == "creds")
    assert 'test -n "$PULUMI_ACCESS_TOKEN"' in run(steps(workflow)[creds])
    cli = index(workflow, lambda s: str(s.get("uses", "")).startswith("pulumi/actions@"))
    preview = index(workflow, lambda s: "pulumi preview" in run(s))
    diff = index(workflow, lambda s: "fleet plan" in run(s))
    summary = index(workflow, lambda s: "$GITHUB_STEP_SUMMARY" in run(s))
    comment = index(workflow, lambda s: "gh pr comment" in run(s))
    upload = index(workflow, lambda s: str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert checkout < venv < creds < cli < preview < diff < summary < comment < upload
    every = steps(workflow)
    # secrets cannot be tested in `if:`; the creds step's output guards what needs them
    for guarded in (cli, preview):
        assert every[guarded]["if"] == "steps.creds.outputs.ok == 'true'"
    assert not any("secrets." in str(s.get("if", "")) for s in every)
    assert "--event-log ev.jsonl" in run(every[preview]) and every[preview]["continue-on-error"] is True
    assert every[comment]["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert "if" not in every[diff] and "if" not in every[summary]  # forks get the offline plan
    assert every[upload]["if"] == "always()"
    assert every[upload]["with"]["path"].split() == ["plan.md", "ev.jsonl", "preview.txt"]
    for flag in ('--against "git:$BASE_SHA"', "--markdown", "> plan.md", "--preview ev.jsonl"):
        assert flag in run(every[diff])


def has_against() -> bool:
    out = subprocess.run([str(FLEET), "plan", "--help"], capture_output=True, text=True, check=False)
    return "--against" in out.stdout and "--markdown" in out.stdout


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    out = subprocess.run(["git", "-C", str(repo), *identity, *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def pull_request(tmp_path: Path) -> tuple[Path, str]:
    """This project's stack in a git repository: the base commit, then a head commit that enables
    electrum. The venv is linked, as `make .venv/.installed` would have made it."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.prod.yaml", "__main__.py"):
        shutil.copy2(PROJECT / name, repo / name)
    shutil.copytree(PROJECT / "stacks", repo / "stacks", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / ".venv").symlink_to(PROJECT / ".venv")
    (repo / ".gitignore").write_text(".venv\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD")
    config = repo / "Pulumi.prod.yaml"
    config.write_text(config.read_text().replace("    - cinnabar\n", "    - cinnabar\n    - electrum\n"))
    assert "- electrum" in config.read_text()
    git(repo, "commit", "-q", "-am", "enable electrum")
    return repo, base


def run_step(step: dict[str, Any], cwd: Path, env: dict[str, str], expressions: dict[str, str]) -> None:
    """A `run:` step as the runner runs it: `${{ }}` in its env resolved from `expressions`, then
    bash -e -o pipefail (its `shell: bash`)."""
    step_env = dict(env)
    for key, value in (step.get("env") or {}).items():
        step_env[key] = EXPRESSION.sub(lambda m: expressions[m.group(1)], str(value))
    assert not EXPRESSION.search(step["run"]), "run scripts take values from env, never inline ${{ }}"
    subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=cwd, env=step_env, check=True
    )


@pytest.mark.skipif(not has_against(), reason="`fleet plan` has no --against/--markdown yet (fleet_sdk/cli/plan.py)")
def test_the_offline_steps_write_the_plan_diff_and_the_summary(workflow: dict[Any, Any], tmp_path: Path) -> None:
    repo, base = pull_request(tmp_path)
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    summary.write_text("")
    output.write_text("")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PULUMI")},
        **{k: str(v) for k, v in workflow["jobs"]["plan"]["env"].items() if "${{" not in str(v)},
        "PULUMI_ACCESS_TOKEN": "",  # a fork's pull request: no secrets
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    expressions = {
        "github.event.pull_request.base.sha": base,
        "steps.preview.outcome == 'success'": "false",  # skipped: no credentials
    }
    every = steps(workflow)
    for i in (index(workflow, lambda s: s.get("id") == "creds"),):
        run_step(every[i], repo, env, expressions)
    assert "ok=true" not in output.read_text()  # so pulumi preview and the CLI install are skipped
    for i in (
        index(workflow, lambda s: "fleet plan" in str(s.get("run", ""))),
        index(workflow, lambda s: "$GITHUB_STEP_SUMMARY" in str(s.get("run", ""))),
    ):
        run_step(every[i], repo, env, expressions)
    plan = (repo / "plan.md").read_text()
    assert plan.startswith("<!-- fleet-plan project=fleet stack=prod -->")
    assert base[:7] in plan and "electrum" in plan
    assert summary.read_text() == plan
    # the worktree of the base is gone again
    assert git(repo, "worktree", "list").count("\n") == 0


def test_the_creds_step_sees_a_token(workflow: dict[Any, Any], tmp_path: Path) -> None:
    output = tmp_path / "output"
    output.write_text("")
    env = {"PATH": os.environ["PATH"], "PULUMI_ACCESS_TOKEN": "pul-123", "GITHUB_OUTPUT": str(output)}
    run_step(steps(workflow)[index(workflow, lambda s: s.get("id") == "creds")], tmp_path, env, {})
    assert output.read_text() == "ok=true\n"
