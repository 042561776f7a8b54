"""What several commands share: finding the project and stack, and loading the stack's fleet."""

from __future__ import annotations

import argparse
from pathlib import Path

from fleet_sdk.spec import Fleet
from fleet_sdk.stackconfig import (
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
    """The stack's Fleet as `pulumi up` would build it (config file plus -c overrides)."""
    project = project_dir(args)
    repo = Path(args.repo) if args.repo else None
    _, settings, fleet = load_stack(project, stack_name(args, project), overrides or [], repo)
    return fleet, settings
