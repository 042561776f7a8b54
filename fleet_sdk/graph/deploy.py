"""The deploy step of each machine with deploy settings (`Machine.deploy`): a local.Command
`<m>-deploy` under the machine's component running `fleet machine deploy <m> --json`, which builds
the system, uploads the machine's secrets, switches and rolls back on failure (fleet_sdk.deploy).

It waits for the machine's vars step, its server, its install step and the deploy steps of the machines its `after`
names (waves). It re-runs when one of its triggers changes: the system closure, the stored
ciphertext of the secrets it uploads, its deploy settings. Deleting it does nothing: a machine keeps
the system it runs. Its JSON result gives the stack outputs `system` and `reboot_required`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi_command import local

from fleet_sdk.deploy.probe import Probed, Unknown, probe_stack
from fleet_sdk.deploy.stored import DIGEST_KEY, ciphertext_digest, generated
from fleet_sdk.errors import ClosureUnknownError
from fleet_sdk.graph.steps import content_hash, fleet_command, result_field, step_environment, with_target_host
from fleet_sdk.spec import Fleet, Machine
from fleet_sdk.spec.deploy import deploy_order
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.tools.runner import LOCAL

if TYPE_CHECKING:
    from fleet_sdk.graph.fleet import MachineComponent


def probe(fleet: Fleet, settings: StackSettings) -> dict[str, Probed]:
    """The systems of every machine the graph deploys, from one `nix eval` per program run (or the
    cache of an unchanged flake): fleet_sdk.deploy.probe."""
    wanted = {m.name: m.machine_class for m in fleet.machines if m.deploy is not None and m.enabled}
    return probe_stack(LOCAL, settings, wanted)


def closure_trigger(machine: Machine, probed: Probed) -> str:
    """The system's outPath, so a preview names exactly the machines whose systems change; with the
    probe off (fleet:closureProbe=false), the flake's source fingerprint. A system that is unknown
    (the flake is not on this machine) is a warning in preview and a refusal in `pulumi up`."""
    if probed.trigger is not None:
        return probed.trigger
    assert isinstance(probed, Unknown)
    if not pulumi.runtime.is_dry_run():
        raise ClosureUnknownError(machine.name, probed.reason)
    pulumi.log.warn(f"machine {machine.name!r}: system unknown: {probed.reason}")
    return f"unknown: {probed.reason}"


def secrets_trigger(
    fleet: Fleet, machine: Machine, settings: StackSettings, vars_step: local.Command | None = None
) -> pulumi.Input[str]:
    """A digest of the ciphertext of the secrets the deploy uploads, as stored in the repository. A
    machine whose vars are not all generated yet gets them from its vars step in this run: then the
    digest is the one that step reports after generating (`fleet vars generate --json`), so the
    next run, which reads the same secrets from the repository, finds the same digest and does not
    deploy again."""
    if vars_step is None or generated(settings.repo, fleet, machine):
        return ciphertext_digest(settings.repo, fleet, machine)
    return result_field(vars_step.stdout, machine.name, DIGEST_KEY)


def settings_trigger(machine: Machine) -> str:
    """A content hash of the machine's deploy settings (without `after`, which only orders)."""
    assert machine.deploy is not None
    return content_hash(machine.deploy.settings())


@dataclass(frozen=True)
class DeployStepArgs:
    fleet: Fleet
    machine: Machine  # enabled, with deploy settings
    settings: StackSettings
    vars: local.Command | None  # the machine's vars step
    server: pulumi.Resource | None  # its cloud server
    ipv4: pulumi.Output[str] | None  # the server's public address: the target unless target_host is set
    system: Probed  # the machine's system closure (closure probe)
    after: tuple[pulumi.Resource, ...] = ()  # the deploy steps it waits for
    install: pulumi.Resource | None = None  # its install step (graph.install)


def deploy_step(name: str, args: DeployStepArgs, opts: pulumi.ResourceOptions) -> local.Command:
    """`fleet machine deploy <m> --json --stack <stack>` (with `--target-host root@<ipv4>` for a cloud
    machine without target_host). `opts`: the machine component's child options."""
    machine = args.machine
    command = fleet_command(["machine", "deploy", machine.name, "--json", "--stack", pulumi.get_stack()])
    target: pulumi.Output[str] | None = None
    if args.ipv4 is not None and machine.target_host is None:
        target = args.ipv4.apply(lambda ip: f"root@{ip}" if ip else "")
    waits = [r for r in (args.vars, args.server, args.install) if r is not None] + list(args.after)
    return local.Command(
        name,
        create=with_target_host(command, target),
        environment=step_environment(args.settings),
        triggers=[
            closure_trigger(machine, args.system),
            secrets_trigger(args.fleet, machine, args.settings, args.vars),
            settings_trigger(machine),
        ],
        add_previous_output_in_env=False,
        # paths travel in the environment, which diffs ignore (graph.steps)
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(depends_on=waits, ignore_changes=["environment"])
        ),
    )


def deploy_steps(fleet: Fleet, machines: dict[str, MachineComponent], settings: StackSettings) -> None:
    """Give each enabled machine with deploy settings its step (`component.deploy`) and outputs
    (`component.deployed`), made after the steps they wait for. A machine without a step (disabled)
    passes its own waits on to the machines that name it in `after`."""
    waits_for: dict[str, tuple[pulumi.Resource, ...]] = {}
    systems = probe(fleet, settings)
    for machine in deploy_order(fleet.machines):
        assert machine.deploy is not None
        after = tuple(dict.fromkeys(r for name in machine.deploy.after for r in waits_for.get(name, ())))
        component = machines[machine.name]
        if not machine.enabled:
            waits_for[machine.name] = after
            continue
        args = DeployStepArgs(
            fleet,
            machine,
            settings,
            component.vars,
            component.server,
            component.ipv4,
            systems[machine.name],
            after,
            component.install,
        )
        step = deploy_step(f"{machine.name}-deploy", args, component.child_options)
        component.deploy = step
        component.deployed = deploy_outputs(step.stdout, machine.name)
        waits_for[machine.name] = (step,)


def deploy_outputs(stdout: pulumi.Output[str], machine: str) -> dict[str, pulumi.Output[Any]]:
    """`system` (the store path the machine runs) and `reboot_required` from the step's JSON result."""
    return {
        "system": result_field(stdout, machine, "current"),
        "reboot_required": result_field(stdout, machine, "reboot_required"),
    }
