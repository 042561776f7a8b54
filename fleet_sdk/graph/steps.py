"""Side effects of the graph as pulumi_command local.Commands running the `fleet` CLI.

The command runs the CLI with the interpreter that runs the program, and paths travel in the
environment, which diffs ignore: moving the checkout or the virtualenv never re-runs a step.
Triggers are content hashes (reference/pulumi.md §4.3): a step re-runs when what it acts on changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import sys
from collections.abc import Iterator
from typing import Any

import pulumi
from pulumi_command import local

from fleet_sdk.spec import Generator
from fleet_sdk.stack.settings import StackSettings

DEPLOY_KEY_VAR = "deploy-key/id_ed25519.pub"


# Collectors of the machine each shared step acts on (the plan document's `subject`), innermost
# last. Nothing of it reaches Pulumi: no input changes, so no step re-runs on a stack.
_SUBJECTS: list[dict[str, str]] = []


@contextlib.contextmanager
def collect_subjects() -> Iterator[dict[str, str]]:
    """URN -> machine of every step registered with `acts_on` while the block runs (the program
    under the mock runtime: the URNs resolve before the run ends)."""
    found: dict[str, str] = {}
    _SUBJECTS.append(found)
    try:
        yield found
    finally:
        _SUBJECTS.remove(found)


def acts_on(resource: pulumi.Resource, machine: str) -> None:
    """Record, at its registration, that shared step `resource` acts on `machine` (for `fleet plan`
    under `collect_subjects`; a no-op otherwise)."""
    if _SUBJECTS:
        found = _SUBJECTS[-1]
        resource.urn.apply(lambda urn: found.__setitem__(urn, machine))


def content_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def fleet_command(args: list[str]) -> str:
    """A shell command line running `fleet ARGS` with the program's interpreter (paths from env)."""
    fixed = shlex.join(args)  # names are validated too; quoting keeps any other text inert
    return f'"$FLEET_PYTHON" -m fleet_sdk {fixed} --repo "$FLEET_REPO" --project "$FLEET_PROJECT"'


def with_target_host(command: str, target: pulumi.Input[str] | None) -> pulumi.Input[str]:
    """`command` with `--target-host TARGET` (shell-quoted) once the target is known; as it is when
    there is none or it comes out empty."""
    if target is None:
        return command
    return pulumi.Output.from_input(target).apply(
        lambda host: f"{command} --target-host {shlex.quote(host)}" if host else command
    )


def step_environment(settings: StackSettings) -> dict[str, str]:
    return {
        "FLEET_PYTHON": sys.executable,
        "FLEET_REPO": str(settings.repo.resolve()),
        "FLEET_PROJECT": str((settings.project or settings.repo).resolve()),
    }


def vars_step(
    machine: str, generators: list[Generator], settings: StackSettings, opts: pulumi.ResourceOptions
) -> local.Command:
    """`fleet vars generate <m> --json`: generates what is missing and prints the machine's public
    values; re-runs when the machine's generator declarations (`fleet.generators_of` of the fleet
    with its flake's generators, vars.declared) change: a flake generator's finalScript derivation is
    part of its definition. `opts`: the machine component's child options."""
    declarations = [g.definition() | {"name": g.name} for g in generators]
    return local.Command(
        f"{machine}-vars",
        create=fleet_command(["vars", "generate", machine, "--json", "--stack", pulumi.get_stack()]),
        environment=step_environment(settings),
        triggers=[content_hash(declarations)],
        add_previous_output_in_env=False,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["environment"])),
    )


def public_value(stdout: pulumi.Output[str], machine: str, var: str, required: bool = True) -> pulumi.Output[Any]:
    """One public value from a vars step's JSON output; None when absent and not `required`."""

    def pick(text: str) -> str | None:
        try:
            return str(json.loads(text)[machine][var]).strip()
        except (ValueError, KeyError, TypeError):
            if not required:
                return None
            raise RuntimeError(
                f"the vars step of {machine} printed no {var}; run `fleet vars generate {machine}`"
            ) from None

    return stdout.apply(pick)


def result_field(stdout: pulumi.Output[str], machine: str, key: str) -> pulumi.Output[Any]:
    """One field of the machine's result in a step's `--json` output (`{machine: {key: …}}`); None
    when absent (e.g. under test mocks, which print nothing)."""

    def pick(text: str | None) -> Any:
        try:
            return json.loads(text or "")[machine][key]
        except (ValueError, KeyError, TypeError):
            return None

    return stdout.apply(pick)
