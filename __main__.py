"""The Pulumi program: `pulumi up --stack S` builds stacks/S.py's fleet, deploys it and exports its
outputs as `machines` and `zerotier`. A program of its own calls `deploy_fleet`, which returns them,
and exports them under names of its choosing (two fleets in one stack, say)."""

from pathlib import Path

from fleet_sdk.graph import run_program

run_program(Path(__file__).resolve().parent)
