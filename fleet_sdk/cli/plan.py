"""`fleet plan`: what `pulumi preview` would register, offline; with `--against`, what would change."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_sdk.errors import ConfigError

if TYPE_CHECKING:
    from fleet_sdk.review.plan import Plan

# --exit-code, as `terraform plan -detailed-exitcode`: 1 is an error (the `error:` path)
NO_CHANGES, CHANGES, DANGER = 0, 2, 3


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "plan",
        parents=[common],
        help="show the resources the stack declares, per machine, without the Pulumi CLI or credentials",
    )
    p.add_argument(
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override stack config as `pulumi preview -c` does (VALUE parsed as JSON when it is JSON)",
    )
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print the plan document (with --against: the diff)")
    shown.add_argument("--markdown", action="store_true", help="print the diff as a pull request comment")
    shown.add_argument("--graph", choices=("dot", "mermaid"), help="print the resource graph (coloured by the diff)")
    p.add_argument(
        "--against",
        metavar="OLD.json|git:REF",
        help="compare with a plan document, or with the project planned at a git revision",
    )
    p.add_argument("--preview", metavar="FILE", type=Path, help="`pulumi preview` event log or --json digest")
    p.add_argument(
        "--exit-code",
        action="store_true",
        help="with --against: exit 0 when nothing changes, 2 on changes, 3 when a machine is wiped or blocked",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fleet_sdk.review.plan import make_plan, render_text
    from fleet_sdk.stack.settings import default_stack, find_project_dir

    if args.against is None and (args.markdown or args.preview or args.exit_code):
        flag = "--markdown" if args.markdown else "--preview" if args.preview else "--exit-code"
        raise ConfigError(f"{flag} compares two plans: add --against OLD.json or --against git:REF")
    project = Path(args.project) if args.project else find_project_dir(Path.cwd())
    stack = args.stack or default_stack(project)
    repo = Path(args.repo) if args.repo else None
    if args.against is not None:
        old, base_ref, plan = _plans(args.against, project, stack, args.config, repo)
    else:
        plan = make_plan(project, stack, args.config, repo)
    for w in plan.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.against is None:
        if args.graph:
            sys.stdout.write(_graph(args.graph, plan.document, None))
        else:
            sys.stdout.write(plan.to_json() if args.json else render_text(plan))
        return 0
    if (old.get("project"), old.get("stack")) != (plan.document["project"], plan.document["stack"]):
        print(
            f"warning: {args.against} is a plan of {old.get('project')}/{old.get('stack')}, this one of "
            f"{plan.document['project']}/{plan.document['stack']}: no URN matches, every resource differs",
            file=sys.stderr,
        )
    diff = _diff(old, plan.document, base_ref, _head_ref(project), args.preview)
    sys.stdout.write(_render(args, plan.document, diff))
    return exit_code(diff) if args.exit_code else 0


def _plans(
    against: str, project: Path, stack: str, overrides: list[str], repo: Path | None
) -> tuple[dict[str, Any], str, Plan]:
    """(base document, its ref, head plan). A git base is planned (in a worktree, by another
    process) while the head is planned here; a file is read first, so a bad one fails at once."""
    from concurrent.futures import ThreadPoolExecutor

    from fleet_sdk.review.plan import make_plan

    if not against.startswith("git:"):
        old, ref = _base(against, project, stack, overrides, repo)
        return old, ref, make_plan(project, stack, overrides, repo)
    # leaving the block waits for the base, and so for its worktree's removal, whatever happens here
    with ThreadPoolExecutor(max_workers=1) as pool:
        base = pool.submit(_base, against, project, stack, overrides, repo)
        plan = make_plan(project, stack, overrides, repo)
        old, ref = base.result()
    return old, ref, plan


def _base(
    against: str, project: Path, stack: str, overrides: list[str], repo: Path | None
) -> tuple[dict[str, Any], str]:
    from fleet_sdk.review import base

    if against.startswith("git:"):
        ref = against.removeprefix("git:")
        if not ref:
            raise ConfigError("--against git:REF: name a revision, e.g. git:main or git:HEAD~1")
        document, commit = base.plan_at(ref, project, stack, overrides, repo)
        return document, commit
    return base.read_document(Path(against)), against


def _head_ref(project: Path) -> str | None:
    """The project's commit (`+dirty` with uncommitted changes), or None outside git."""
    from fleet_sdk.tools.runner import LOCAL

    done = LOCAL.run(["git", "-C", project, "rev-parse", "HEAD"], check=False)
    if done.returncode != 0:
        return None
    dirty = LOCAL.run(["git", "-C", project, "status", "--porcelain", "--untracked-files=no"], check=False)
    return done.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")


def _diff(
    old: dict[str, Any], new: dict[str, Any], base_ref: str, head_ref: str | None, preview: Path | None
) -> dict[str, Any]:
    from fleet_sdk.review.diff import diff_plans

    diff = diff_plans(old, new, base={"ref": base_ref}, head={"ref": head_ref})
    if preview is not None:
        from fleet_sdk.review.preview import apply_preview, read_preview

        diff = apply_preview(diff, read_preview(preview))
    return diff


def _graph(kind: str, plan: dict[str, Any], diff: dict[str, Any] | None) -> str:
    from fleet_sdk.review import graphs

    return graphs.render_dot(plan, diff) if kind == "dot" else graphs.render_mermaid(plan, diff)


def _render(args: argparse.Namespace, plan: dict[str, Any], diff: dict[str, Any]) -> str:
    import json

    if args.json:
        return json.dumps(diff, indent=2, sort_keys=True) + "\n"
    if args.graph:
        return _graph(args.graph, plan, diff)
    if args.markdown:
        from fleet_sdk.review.graphs import render_mermaid
        from fleet_sdk.review.markdown import render_markdown

        text: str = render_markdown(diff, mermaid=render_mermaid(plan, diff))
        return text if text.endswith("\n") else text + "\n"
    from fleet_sdk.review.danger import render_text

    return render_text(diff)


def exit_code(diff: dict[str, Any]) -> int:
    """3 when a machine would be wiped or a change is blocked, 2 when anything changes, else 0."""
    machines = diff["machines"].values()
    if any({"wipe", "blocked"} & set(m["danger"]) for m in machines) or any(
        c["protect"] and c["op"] in ("replace", "delete") for c in diff["shared"]
    ):
        return DANGER
    changed = any(n for op, n in diff["summary"].items() if op != "same")
    changed = changed or any(m["status"] != "unchanged" for m in machines) or any(diff["outputs"].values())
    return CHANGES if changed else NO_CHANGES
