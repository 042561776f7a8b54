"""The base of `fleet plan --against`: a plan document from a file, or planned at a git revision.

`git:REF` checks REF out in a temporary worktree of the repository holding the project (`git worktree
add --detach`), runs `python -m fleet_sdk plan --json` there with the same stack and config overrides
(the worktree's own fleet_sdk when it has one: PYTHONPATH), and always removes the worktree again.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from fleet_sdk.errors import CommandError, ConfigError
from fleet_sdk.tools.runner import LOCAL, Runner

SCHEMAS = (None, "fleet-plan/1", "fleet-plan/2")


def check_document(document: Any, source: str) -> dict[str, Any]:
    """`document` when it is a plan document `fleet plan --json` wrote (any schema so far: fields a
    schema 1 document lacks are unknown to the diff); else ConfigError naming `source`."""
    if not isinstance(document, dict) or not isinstance(document.get("resources"), list):
        raise ConfigError(f"{source}: not a plan document (write one with `fleet plan --json`)")
    if not isinstance(document.get("machines"), dict):
        raise ConfigError(f"{source}: not a plan document: `machines` is not an object")
    if document.get("schema") not in SCHEMAS:
        raise ConfigError(
            f"{source}: plan schema {document.get('schema')!r} is newer than this fleet_sdk reads "
            f"({', '.join(s for s in SCHEMAS if s)}); plan the base with the same fleet_sdk"
        )
    for i, r in enumerate(document["resources"]):
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) for k in ("urn", "type", "name")):
            raise ConfigError(f"{source}: resources[{i}] is not a resource (urn, type, name)")
    return document


def read_document(path: Path) -> dict[str, Any]:
    """A plan document from a file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; pass a plan written by `fleet plan --json`, or git:REF") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not JSON ({e.msg}, line {e.lineno}); pass a `fleet plan --json` document") from None
    return check_document(document, str(path))


def _git(runner: Runner, cwd: Path, *args: str) -> str:
    return runner.run(["git", "-C", cwd, *args]).stdout.decode().strip()


def resolve(runner: Runner, project: Path, ref: str) -> tuple[Path, str]:
    """(top folder of the repository holding `project`, full commit id of `ref`)."""
    found = runner.run(["git", "-C", project, "rev-parse", "--show-toplevel"], check=False)
    if found.returncode != 0:
        raise ConfigError(f"git:{ref}: the project {project} is not in a git repository")
    top = Path(found.stdout.decode().strip())
    commit = runner.run(["git", "-C", top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], check=False)
    if commit.returncode != 0:
        raise ConfigError(
            f"git:{ref}: no such commit in {top} (a shallow clone lacks it: fetch it, e.g. actions/checkout "
            "with fetch-depth: 0)"
        )
    return top, commit.stdout.decode().strip()


def plan_at(
    ref: str,
    project: Path,
    stack: str,
    overrides: list[str],
    repo: Path | None = None,
    runner: Runner = LOCAL,
) -> tuple[dict[str, Any], str]:
    """(plan document, commit id) of `project` as it was at git revision `ref`."""
    project = project.resolve()
    top, commit = resolve(runner, project, ref)
    if not project.is_relative_to(top):
        raise ConfigError(f"git:{ref}: the project {project} is not inside its repository {top}")
    scratch = Path(tempfile.mkdtemp(prefix="fleet-plan-base-"))
    tree = scratch / "tree"
    try:
        runner.run(["git", "-C", top, "worktree", "add", "--detach", "--quiet", tree, commit])
        return _plan_in(tree, tree / project.relative_to(top), ref, commit, stack, overrides, repo, runner), commit
    finally:
        runner.run(["git", "-C", top, "worktree", "remove", "--force", tree], check=False)
        shutil.rmtree(scratch, ignore_errors=True)
        runner.run(["git", "-C", top, "worktree", "prune"], check=False)


def _plan_in(
    tree: Path,
    project: Path,
    ref: str,
    commit: str,
    stack: str,
    overrides: list[str],
    repo: Path | None,
    runner: Runner,
) -> dict[str, Any]:
    name = f"git:{ref} ({commit[:12]})"
    if not (project / "Pulumi.yaml").is_file():
        raise ConfigError(f"{name}: the project has no Pulumi.yaml at that revision")
    argv: list[str | Path] = [sys.executable, "-m", "fleet_sdk", "plan", "--json", "--project", project]
    argv += ["--stack", stack, *(a for o in overrides for a in ("-c", o))]
    if repo is not None:
        argv += ["--repo", repo.resolve()]
    env = {}
    if (tree / "fleet_sdk").is_dir():
        env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    try:
        done = runner.run(argv, cwd=project, env=env)
    except CommandError as e:
        reason = "\n  ".join(e.stderr.strip().splitlines()[-20:]) or f"exit code {e.returncode}"
        raise ConfigError(f"{name}: the base does not plan:\n  {reason}") from None
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise ConfigError(f"{name}: `fleet plan --json` printed no plan document") from None
    return check_document(document, name)
