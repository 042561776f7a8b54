"""What several commands share: finding the project and stack, and loading the stack's fleet."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleet_sdk.errors import ConfigError
from fleet_sdk.spec import Fleet
from fleet_sdk.stack.settings import (
    StackSettings,
    default_stack,
    find_project_dir,
    load_stack,
)


def project_dir(args: argparse.Namespace) -> Path:
    return Path(args.project) if args.project else find_project_dir(Path.cwd())


def stack_name(args: argparse.Namespace, project: Path) -> str:
    return str(args.stack) if args.stack else default_stack(project)


def load(args: argparse.Namespace, overrides: list[str] | None = None) -> tuple[Fleet, StackSettings]:
    """The stack's Fleet as `pulumi up` would build it (config file plus -c overrides), with the
    generators its flake declares (fleet_sdk.vars.declared; `args.flake_mode` when the command has
    --from-flake/--no-flake, which then also says on a terminal why the flake's are left out)."""
    from fleet_sdk.tools.runner import LOCAL
    from fleet_sdk.vars.declared import declared_fleet

    project = project_dir(args)
    repo = Path(args.repo) if args.repo else None
    stack = stack_name(args, project)
    _, settings, fleet = load_stack(project, stack, overrides or [], repo)
    if settings.repo.exists() and not settings.repo.is_dir():
        # else every var would look missing, and a generate would fail half-way
        raise ConfigError(
            f"{settings.repo}: the fleet repository is not a folder; pass --repo DIR or correct fleet:repo"
        )
    mode = getattr(args, "flake_mode", None)
    declared = declared_fleet(LOCAL, fleet, settings, mode or "auto", program=f"stacks/{stack}.py")
    if declared.note and mode == "auto" and sys.stderr.isatty():  # for a human, as the progress bar
        print(f"note: {declared.note}", file=sys.stderr)
    return declared.fleet, settings


def repository(args: argparse.Namespace) -> Path:
    """The fleet repository without loading the stack's program: --repo, else the stack's
    fleet:repo when there is a project, else the current folder (a repository not yet planned)."""
    from fleet_sdk.errors import ConfigError
    from fleet_sdk.stack.settings import load_stack_config

    if args.repo:
        return Path(args.repo)
    try:
        project = project_dir(args)
    except ConfigError:
        if args.project:
            raise
        return Path(".")
    config = load_stack_config(project, stack_name(args, project))
    return StackSettings.from_values(config.values, project).repo
