"""The install step of each enabled NixOS machine with a cloud server and disks: a local.Command
`<m>-install` under the machine's component running `fleet machine install <m> --json`
(fleet_sdk.install), which installs NixOS on the new server with nixos-anywhere, or adopts a server
that already runs the machine (its host key from vars), wiping nothing.

Its trigger is the server's identity (its id), so a new server (a replaced one: a location change)
is installed, and nothing else re-runs it: a changed closure is the deploy step's business. A changed
disk layout on an installed machine would need a wipe: the preview says so (and the machine's
`reinstall_required` output), and only a machine with `reinstall=True` has the layout in its trigger,
so the install re-runs and reinstalls it. It waits for the server and the machine's vars step (keys,
secrets); the deploy step and the ZeroTier admission wait for it. Deleting it (the machine left the
fleet or was disabled) drops the machine's known_hosts line (`fleet machine forget <m>`); a
replacement deletes first, so the new install's line is never dropped after it was written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
from pulumi_command import local

from fleet_sdk.graph.steps import fleet_command, result_field, step_environment, with_target_host
from fleet_sdk.install.records import install_state, layout_digest
from fleet_sdk.spec import Fleet, Machine
from fleet_sdk.stack.settings import StackSettings

if TYPE_CHECKING:
    from fleet_sdk.graph.fleet import MachineComponent


def installs(machine: Machine, component: MachineComponent) -> bool:
    """Whether the graph installs the machine: enabled, NixOS, with disks, on a cloud server the graph makes."""
    return machine.enabled and machine.machine_class == "nixos" and component.server is not None


def reinstall_required(machine: Machine, settings: StackSettings) -> bool:
    """The machine was installed (machines/<m>/install.json) with a disk layout other than the stack's."""
    layout = machine.disks.render() if machine.disks is not None else None
    return bool(install_state(settings.repo, machine.name, layout)["reinstall_required"])


def install_step(machine: Machine, component: MachineComponent, settings: StackSettings) -> local.Command:
    assert component.server is not None
    command = fleet_command(["machine", "install", machine.name, "--json", "--stack", pulumi.get_stack()])
    # the server's public address: a fresh server is reachable only there (not yet at a ZeroTier
    # name its target_host may give), as root (the installer's user)
    target: pulumi.Output[str] | None = None
    if component.ipv4 is not None:
        target = component.ipv4.apply(lambda ip: f"root@{ip}" if ip else "")
    triggers: list[Any] = [component.server.id]
    if machine.reinstall and machine.disks is not None:
        triggers.append(layout_digest(machine.disks.render()))
    waits = [r for r in (component.server, component.vars) if r is not None]
    forget = fleet_command(["machine", "forget", machine.name, "--stack", pulumi.get_stack()])
    return local.Command(
        f"{machine.name}-install",
        create=with_target_host(command, target),
        delete=forget,
        environment=step_environment(settings),
        triggers=triggers,
        add_previous_output_in_env=False,
        # paths travel in the environment, which diffs ignore (graph.steps)
        opts=pulumi.ResourceOptions.merge(
            component.child_options,
            pulumi.ResourceOptions(depends_on=waits, ignore_changes=["environment"], delete_before_replace=True),
        ),
    )


def install_steps(fleet: Fleet, machines: dict[str, MachineComponent], settings: StackSettings) -> None:
    """Give each machine the graph installs its step (`component.install`) and outputs."""
    for machine in fleet.machines:
        component = machines[machine.name]
        if not installs(machine, component) or machine.disks is None:
            continue  # without disks nixos-anywhere has nothing to partition: installed by hand
        needs_reinstall = reinstall_required(machine, settings)  # reads install.json: once per machine
        if needs_reinstall and not machine.reinstall:
            pulumi.log.warn(
                f"machine {machine.name!r}: its disk layout differs from the one it was installed with; "
                "installing it again wipes its disks. The install does not re-run; set reinstall=True on the "
                "machine to reinstall it, or revert the layout"
            )
        component.install = step = install_step(machine, component, settings)
        component.installed = {
            "install": result_field(step.stdout, machine.name, "status"),
            "host_key_fingerprint": result_field(step.stdout, machine.name, "host_key_fingerprint"),
            "reinstall_required": needs_reinstall,
        }
