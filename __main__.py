"""The Pulumi program: `pulumi up --stack S` builds stacks/S.py's fleet and deploys it."""

from pathlib import Path

from fleet_sdk.graph import run_program

run_program(Path(__file__).resolve().parent)
