"""`fleet plan --against OLD.json|git:REF`: the base from a file or a git revision (a temporary
worktree, always removed), `--exit-code`, and the outputs (text, --json, --markdown, --graph,
--preview) through the CLI."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.cli import main
from fleet_sdk.review import plan as planning

from .conftest import PROJECT
from .test_plan_diff import write_demo

pytestmark = pytest.mark.integration  # git

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
FIXTURES = Path(__file__).parent / "fixtures"


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def plan_cli(project: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["plan", "--project", str(project), "--stack", "dev", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder temporary worktrees go to, to see that none is left."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def worktrees(repo: Path) -> list[str]:
    return [line for line in git(repo, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


def test_git_ref_plans_the_base_in_a_worktree_and_removes_it(
    tmp_path: Path, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = write_demo(tmp_path / "repo")
    git(project, "init", "-q")
    base = commit_all(project, "web on cx22")
    (project / "Pulumi.dev.yaml").write_text("config:\n  fleet:flake: .\n  demo:webType: cx32\n")
    head = commit_all(project, "web on cx32")
    code, out, err = plan_cli(project, "--against", "git:HEAD~1", "--json", "--exit-code", capsys=capsys)
    assert code == 2, err
    diff = json.loads(out)
    assert diff["base"]["ref"] == base and diff["head"]["ref"] == head
    server = next(c for c in diff["machines"]["web"]["changes"] if c["type"] == "hcloud:index/server:Server")
    assert server["paths"] == [{"path": "serverType", "kind": "update", "old": "cx22", "new": "cx32"}]
    assert diff["machines"]["web"]["danger"] == ["reboot"]
    assert len(worktrees(project)) == 1 and list(scratch.iterdir()) == []


STUB = """\
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
if os.path.exists(os.path.join(here, "fail")):
    print("error: stacks/dev.py:3: NameError: name 'oops' is not defined", file=sys.stderr)
    sys.exit(1)
doc = json.load(open(os.path.join(here, "plan.json")))
doc["outputs"] = {"argv": sys.argv[1:], "cwd": os.getcwd()}
print(json.dumps(doc))
"""


def stub_repo(root: Path, document: dict[str, Any], fail: bool) -> Path:
    """A repository whose base commit carries its own `fleet_sdk` (run from the worktree, by
    PYTHONPATH): a stub printing `document` with the arguments it got, or failing as a bad stack would."""
    project = write_demo(root)
    git(project, "init", "-q")
    stub = project / "fleet_sdk"
    stub.mkdir()
    (stub / "__init__.py").write_text("")
    (stub / "__main__.py").write_text(STUB)
    (stub / "plan.json").write_text(json.dumps(document))
    if fail:
        (stub / "fail").write_text("")
    commit_all(project, "base with its own fleet_sdk")
    git(project, "rm", "-q", "-r", "fleet_sdk")
    commit_all(project, "head")
    return project


def test_git_ref_runs_the_bases_own_fleet_sdk_with_the_same_stack_and_overrides(
    tmp_path: Path, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = {"project": "demo", "stack": "dev", "machines": {}, "resources": [], "outputs": {}}
    project = stub_repo(tmp_path / "repo", document, fail=False)
    args = ("--against", "git:HEAD~1", "--json", "-c", "demo:webType=cx32", "--repo", str(project))
    code, out, err = plan_cli(project, *args, capsys=capsys)
    assert code == 0, err
    diff = json.loads(out)
    argv = diff["outputs"]["removed"]  # the stub's outputs are the base's only ones
    assert argv == ["argv", "cwd"]
    assert diff["machines"]["web"]["status"] == "added"  # the stub's plan has no machine
    assert len(worktrees(project)) == 1 and list(scratch.iterdir()) == []


def test_the_base_gets_the_same_arguments(tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet_sdk.review import base

    document = {"project": "demo", "stack": "dev", "machines": {}, "resources": [], "outputs": {}}
    project = stub_repo(tmp_path / "repo", document, fail=False)
    got, commit = base.plan_at("HEAD~1", project, "dev", ["demo:webType=cx32"], project)
    assert commit == git(project, "rev-parse", "HEAD~1")
    argv, cwd = got["outputs"]["argv"], Path(got["outputs"]["cwd"])
    assert argv[:2] == ["plan", "--json"] and argv[argv.index("--stack") + 1] == "dev"
    assert argv[argv.index("-c") + 1] == "demo:webType=cx32" and argv[argv.index("--repo") + 1] == str(
        project.resolve()
    )
    assert cwd.parent == scratch / cwd.parent.name and not cwd.exists()  # planned in the worktree, now gone


def test_a_base_that_fails_to_plan_is_an_error_naming_the_ref_and_the_worktree_goes(
    tmp_path: Path, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stub_repo(tmp_path / "repo", {}, fail=True)
    code, out, err = plan_cli(project, "--against", "git:HEAD~1", "--exit-code", capsys=capsys)
    commit = git(project, "rev-parse", "HEAD~1")
    assert code == 1 and out == ""
    assert err.startswith(f"error: git:HEAD~1 ({commit[:12]}): the base does not plan")
    assert "NameError: name 'oops'" in err and "Traceback" not in err
    assert len(worktrees(project)) == 1 and list(scratch.iterdir()) == []


@pytest.mark.parametrize(
    ("ref", "message"),
    [("no-such-branch", "git:no-such-branch: no such commit"), ("", "--against git:REF: name a revision")],
)
def test_an_unknown_ref_is_an_error(
    ref: str, message: str, tmp_path: Path, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = write_demo(tmp_path / "repo")
    git(project, "init", "-q")
    commit_all(project, "one")
    code, _, err = plan_cli(project, "--against", f"git:{ref}", capsys=capsys)
    assert code == 1 and err.startswith(f"error: {message}")
    assert list(scratch.iterdir()) == []


def test_git_ref_outside_a_repository_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = write_demo(tmp_path / "plain")
    code, _, err = plan_cli(project, "--against", "git:main", capsys=capsys)
    assert code == 1 and "is not in a git repository" in err


# --- OLD.json, exit codes and outputs ---


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo(tmp_path_factory.mktemp("against") / "project")


def old_json(project: Path, tmp_path: Path, *overrides: str) -> str:
    path = tmp_path / "old.json"
    path.write_text(planning.make_plan(project, "dev", list(overrides)).to_json())
    return str(path)


@pytest.mark.parametrize(
    ("base", "head", "code"),
    [
        ((), (), 0),
        (("demo:webType=cx32",), (), 2),
        (("demo:webLocation=nbg1",), (), 3),  # wipe
        (("demo:protect=true",), ("demo:protect=true", "demo:ctlLocation=hel1"), 3),  # blocked
    ],
)
def test_exit_codes(
    base: tuple[str, ...],
    head: tuple[str, ...],
    code: int,
    demo_project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = old_json(demo_project, tmp_path, *base)
    overrides = [a for o in head for a in ("-c", o)]
    assert plan_cli(demo_project, "--against", old, "--exit-code", *overrides, capsys=capsys)[0] == code
    # without --exit-code only an error is not 0
    assert plan_cli(demo_project, "--against", old, *overrides, capsys=capsys)[0] == 0


def test_a_plan_of_another_stack_is_compared_with_a_warning(
    demo_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = planning.make_plan(demo_project, "dev").document
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc | {"stack": "staging"}).replace("urn:pulumi:dev::", "urn:pulumi:staging::"))
    code, out, err = plan_cli(demo_project, "--against", str(old), "--exit-code", capsys=capsys)
    # every server would be deleted and created anew: a wipe
    assert code == 3 and f"warning: {old} is a plan of demo/staging, this one of demo/dev" in err
    assert "moved? was urn:pulumi:staging::" in out


def test_text_shows_each_changed_machine_with_its_danger(
    demo_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = old_json(demo_project, tmp_path, "demo:webType=cx32", "demo:ctlLocation=hel1")
    code, out, _ = plan_cli(demo_project, "--against", old, capsys=capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"demo/dev: base {old} -> head ")
    # the server resized and the admissions on the moved controller (its address known after apply)
    assert lines[1].startswith("+0 create · ~3 update · +-1 replace · -0 delete · ")
    assert "ctl  changed  [WIPE]" in lines and "web  changed  [reboot]" in lines
    assert '       serverType: "cx32" -> "cx22"' in lines and '       location: "hel1" -> "fsn1" (replaces)' in lines


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ('{"resources": {}}', "not a plan document"),
        ('{"schema": "fleet-plan/9", "resources": [], "machines": {}}', "newer than this fleet_sdk reads"),
    ],
)
def test_a_bad_old_plan_is_an_error_naming_it(
    content: str | None, message: str, demo_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.json"
    if content is not None:
        path.write_text(content)
    code, out, err = plan_cli(demo_project, "--against", str(path), "--exit-code", capsys=capsys)
    assert code == 1 and out == "" and err.startswith(f"error: {path}: ") and message in err


@pytest.mark.parametrize("flag", ["--markdown", "--exit-code", "--preview"])
def test_comparing_flags_need_against(flag: str, demo_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan_cli(demo_project, *([flag, "events.jsonl"] if flag == "--preview" else [flag]), capsys=capsys)
    assert code == 1 and err.startswith(f"error: {flag} compares two plans: add --against")


def test_json_markdown_and_graph_outputs(
    demo_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = old_json(demo_project, tmp_path, "demo:webType=cx32")
    _, out, _ = plan_cli(demo_project, "--against", old, "--json", capsys=capsys)
    diff = json.loads(out)
    assert diff["schema"] == "fleet-plan-diff/1" and diff["machines"]["web"]["danger"] == ["reboot"]
    _, out, _ = plan_cli(demo_project, "--against", old, "--markdown", capsys=capsys)
    assert out.startswith("<!-- fleet-plan project=demo stack=dev -->") and "```mermaid\nflowchart LR" in out
    _, out, _ = plan_cli(demo_project, "--against", old, "--graph", "mermaid", capsys=capsys)
    assert out.startswith("flowchart LR") and "classDef update" in out and "    class n" in out
    _, out, _ = plan_cli(demo_project, "--graph", "dot", capsys=capsys)
    assert out.startswith("strict digraph {") and "fillcolor" not in out  # no diff: nothing coloured


def test_preview_is_applied_before_rendering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = planning.make_plan(PROJECT, "prod").document
    for r in doc["resources"]:
        if r["type"] == "hcloud:index/server:Server" and r["name"] == "cinnabar":
            r["inputs"]["serverType"] = "cx33"
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    preview = FIXTURES / "pulumi" / "preview-digest.json"
    code = main(
        [
            "plan",
            "--project",
            str(PROJECT),
            "--stack",
            "prod",
            "--against",
            str(old),
            "--preview",
            str(preview),
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "SECRET-" not in out
    diff = json.loads(out)
    assert "preview" in diff  # apply_preview's account of where Pulumi and the offline plan differ
    server = next(c for c in diff["machines"]["cinnabar"]["changes"] if c["name"] == "cinnabar")
    assert server["pulumi_op"] == "update"
