"""ZeroTier in the graph: the network's id and members' addresses as stack outputs, and every member
admitted on the controller in the same run (clan admits them only on the controller's next deploy)."""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi_command import local

from fleet_sdk.graph.steps import (
    acts_on,
    content_hash,
    fleet_command,
    public_value,
    step_environment,
    with_target_host,
)
from fleet_sdk.spec import Fleet, ServiceInstance
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.vars.store import GeneratorId, VarsStore
from fleet_sdk.zerotier import service

if TYPE_CHECKING:
    from fleet_sdk.graph.fleet import MachineComponent


def _value(stdout: pulumi.Output[str], machine: str, var: str) -> pulumi.Output[Any]:
    # absent from a step's output that did not generate it (e.g. under test mocks): null
    return public_value(stdout, machine, var, required=False)


@dataclass(frozen=True)
class ZeroTierNetworkArgs:
    fleet: Fleet
    instance: ServiceInstance  # a zerotier instance the spec checked (one controller)
    machines: dict[str, MachineComponent]  # the fleet's machine components, whose vars steps it reads
    settings: StackSettings


class ZeroTierNetwork(pulumi.ComponentResource):
    """`fleet:zerotier:Network` (composite): one instance's admissions and its controller step. Named
    after the instance."""

    def __init__(self, name: str, args: ZeroTierNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleet:zerotier:Network", name, None, opts)
        fleet, instance, machines, settings = args.fleet, args.instance, args.machines, args.settings
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        self.net_name = net = instance.name
        controller = fleet.members(net, "controller")[0]
        members = service.members(fleet, instance)
        external_members = service.external_members(instance)
        external = list(external_members)
        ctrl = machines[controller]
        assert ctrl.vars is not None  # every member declares the zerotier generators
        self.network_id = _value(ctrl.vars.stdout, controller, f"zerotier-network-{net}/network-id")
        addresses: dict[str, Any] = {}
        for m in members:
            step = machines[m].vars
            assert step is not None
            addresses[m] = _value(step.stdout, m, f"zerotier-ip-{m}-{net}/ip")
        for member, ip in external_members.items():
            # given by address: that address; given by id: its address in the network
            addresses[member] = ip if ip else self.network_id.apply(functools.partial(_external_ip, member=member))
        self.addresses = addresses
        # the controller machine must exist (and have its vars) before anything is admitted on it
        controller_deps: list[pulumi.Resource] = [r for r in (ctrl.vars, ctrl.server, ctrl.install) if r is not None]
        # a cloud controller is reached at its public address, as the user its target host names
        # (root by default); one provisioned by hand at its target host
        ctrl_target = fleet.machine(controller).target
        user = ctrl_target.user if ctrl_target else "root"
        target: pulumi.Input[str] | None = (
            ctrl.ipv4.apply(lambda ip: f"{user}@{ip}" if ip else "")
            if ctrl.ipv4 is not None
            else (str(ctrl_target) if ctrl_target else None)
        )
        env = step_environment(settings)
        # a preview reads the ids the vars steps will print from the repository (graph.steps)
        self._stored = VarsStore(settings.repo) if pulumi.runtime.is_dry_run() else None
        admitted = [m for m in members if m != controller and fleet.machine(m).enabled] + external
        self.admissions = {
            member: self._admission(machines, member, target, env, controller_deps, child) for member in admitted
        }
        # The controller's configuration: every member authorised at once, re-run whenever the
        # member list changes (so a new member also lands in the controller's own state).
        self.controller_config = local.Command(
            f"{name}-controller",
            create=with_target_host(fleet_command(["zerotier", "admit", net, "--stack", pulumi.get_stack()]), target),
            environment=env,
            triggers=[content_hash(sorted([controller, *admitted]))],
            add_previous_output_in_env=False,
            opts=_step_options(child, [*controller_deps, *self.admissions.values()]),
        )
        acts_on(self.controller_config, controller)
        self.register_outputs(self.outputs())

    def outputs(self) -> dict[str, Any]:
        return {"network_id": self.network_id, "members": self.addresses}

    def _admission(
        self,
        machines: dict[str, MachineComponent],
        member: str,
        target: pulumi.Input[str] | None,
        env: dict[str, str],
        controller_deps: list[pulumi.Resource],
        child: pulumi.ResourceOptions,
    ) -> local.Command:
        """The step admitting `member` (an enabled machine, or a member id) on the controller. Its
        delete deauthorizes the member, by network and member id written in when it is created, so it
        works after the machine left the fleet; its triggers are those ids, so a renamed machine (an
        alias to its old step) keeps its admission, and only a new identity replaces it (admitted
        first, then the old member deauthorized)."""
        net, stack = self.net_name, pulumi.get_stack()
        mine = machines.get(member)  # none for a member given by id or address
        member_steps = [r for r in (mine.vars, mine.install) if r is not None] if mine else []
        nwid: pulumi.Input[str | None] = self._preview_value(f"zerotier-network-{net}", "network-id", self.network_id)
        mid: pulumi.Input[str | None] = member
        if mine is not None:
            ip = self._preview_value(f"zerotier-ip-{member}-{net}", "ip", self.addresses[member])
            mid = pulumi.Output.from_input(ip).apply(_member_id)
        delete = pulumi.Output.all(nwid, mid, target or "").apply(
            lambda v: _deauthorize_command(v[0], v[1], v[2], stack)
        )
        opts = _step_options(child, [*controller_deps, *member_steps])
        if mine is not None and mine.machine.renamed_from:
            renamed = [pulumi.Alias(name=f"{net}-admit-{old}") for old in mine.machine.renamed_from]
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=list(renamed)))
        step = local.Command(
            f"{net}-admit-{member}",
            create=with_target_host(fleet_command(["zerotier", "admit", net, member, "--stack", stack]), target),
            delete=delete,
            environment=env,
            triggers=[nwid, mid],
            add_previous_output_in_env=False,
            opts=opts,
        )
        if mine is not None:  # the plan's `subject`: a machine of the fleet, not a member by id
            acts_on(step, member)
        return step

    def _preview_value(self, generator: str, file: str, output: pulumi.Output[Any]) -> pulumi.Input[Any]:
        """A shared public value as a vars step prints it: in a preview the one the repository holds
        (the step prints it unless it regenerates it, which it does only for a missing one), so an
        admission whose vars step re-runs is not previewed as replaced; else the step's output."""
        if self._stored is not None and (stored := self._stored.public(GeneratorId(generator, None), file)):
            return stored.decode().strip()
        return output


def _step_options(child: pulumi.ResourceOptions, depends_on: list[pulumi.Resource]) -> pulumi.ResourceOptions:
    # paths travel in the environment, which diffs ignore (graph.steps)
    return pulumi.ResourceOptions.merge(
        child, pulumi.ResourceOptions(depends_on=depends_on, ignore_changes=["environment"])
    )


def _member_id(ip: str | None) -> str | None:
    from fleet_sdk.zerotier.identity import member_id

    return member_id(ip) if ip else None


def _deauthorize_command(nwid: str | None, mid: str | None, target: str, stack: str) -> str | None:
    """`fleet zerotier deauthorize NWID MID` on the controller; none while an id is unknown."""
    if not nwid or not mid:
        return None
    command = fleet_command(["zerotier", "deauthorize", nwid, mid, "--stack", stack])
    return f"{command} --target-host {shlex.quote(target)}" if target else command


def _external_ip(nwid: str | None, *, member: str) -> str | None:
    from fleet_sdk.zerotier.identity import rfc4193

    return rfc4193(nwid, member) if nwid else None


def networks(
    fleet: Fleet, machines: dict[str, MachineComponent], settings: StackSettings, opts: pulumi.ResourceOptions
) -> dict[str, ZeroTierNetwork]:
    """A network component per zerotier instance of the fleet, made with `opts` (the fleet's child options)."""
    return {
        inst.name: ZeroTierNetwork(inst.name, ZeroTierNetworkArgs(fleet, inst, machines, settings), opts)
        for inst in fleet.instances
        if service.is_zerotier(inst)
    }
