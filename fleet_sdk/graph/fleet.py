"""The Fleet component: one machine component per machine, the clouds' shared resources beside them.

Components are written as data-safe-haven writes them: `XComponent(name, XArgs, opts)` with a frozen
dataclass of inputs, children made with `ResourceOptions.merge(opts, ResourceOptions(parent=self))`,
and `register_outputs` last. Clouds are plug-ins (fleet_sdk.graph.clouds), found by host kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import pulumi

from fleet_sdk.errors import DeployKeyMissingError, FleetError
from fleet_sdk.graph.clouds import Cloud, CloudArgs, check_plugins, plugin_for
from fleet_sdk.graph.clouds import gcp as _gcp  # noqa: F401 (registers the built-in clouds)
from fleet_sdk.graph.clouds import hetzner as _hetzner  # noqa: F401
from fleet_sdk.sops import credentials as cloudsecrets
from fleet_sdk.spec import Fleet, Machine
from fleet_sdk.stack.settings import SECRET_PLACEHOLDER, StackSettings
from fleet_sdk.vars import deploykey

if TYPE_CHECKING:
    from pulumi_command import local

    from fleet_sdk.graph.clouds.cloudflare import CloudflareZone
    from fleet_sdk.graph.zerotier import ZeroTierNetwork


def settings_from_pulumi_config(project_dir: Path | None = None) -> StackSettings:
    """The stack config as the running Pulumi program sees it: every key, so a misspelt fleet: key is
    refused as `fleet plan` refuses it and a stack reads its own keys from settings in both."""
    from pulumi.runtime import config as runtime_config

    secret = set(runtime_config.get_config_secret_keys_env())
    values = {}
    for key, value in {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}.items():
        ns, _, name = key.rpartition(":")
        full = f"{ns.removesuffix(':config')}:{name}"  # older engines pass ns:config:key
        hidden = key in secret or runtime_config.is_config_secret(key)
        values[full] = SECRET_PLACEHOLDER if hidden else str(value)  # a stack reads secrets with pulumi.Config
    return StackSettings.from_values(values, project_dir or Path.cwd())


def _unknown_string() -> pulumi.Output[str]:
    """A value known only after apply, as preview shows it."""

    async def value() -> str | None:
        return None

    async def known() -> bool:
        return False

    return pulumi.Output(set(), value(), known())  # type: ignore[arg-type]


def _secret(credential: cloudsecrets.Credential) -> pulumi.Output[str]:
    """A credential as a Pulumi secret: encrypted in state, "[secret]" in plans; unknown when a dry run
    could not open it."""
    return pulumi.Output.secret(credential.value if credential.value is not None else _unknown_string())


class FleetOutputs(TypedDict):
    """What deploy_fleet returns; the stack program exports each under its key."""

    # name -> {"ipv4", "ipv6"?} of every machine with cloud resources, and {"system", "reboot_required"}
    # of every machine the graph deploys
    machines: dict[str, dict[str, Any]]
    zerotier: NotRequired[dict[str, dict[str, Any]]]  # instance -> {"network_id", "members"}; absent without


@dataclass(frozen=True)
class MachineArgs:
    fleet: Fleet
    machine: Machine
    settings: StackSettings


class MachineComponent(pulumi.ComponentResource):
    """One machine (`fleet:index:Machine`, composite); its vars step and cloud resources are its children.

    Made in two steps: the component and its vars step, then (`provision`, once the clouds' shared
    components exist, which may need a machine's vars step for the deploy key) its server."""

    # No class-level annotations: Pulumi reads a resource class's annotations (get_type_hints,
    # uncached) at every registration, which cost a tenth of the plan.
    def __init__(self, name: str, args: MachineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        own = opts
        if args.machine.renamed_from:  # its old URNs, and through them its children's: nothing replaced
            aliases: list[pulumi.Input[str | pulumi.Alias]] = [pulumi.Alias(name=o) for o in args.machine.renamed_from]
            own = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=aliases))
        super().__init__("fleet:index:Machine", name, None, own)
        self._child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        self.ipv4: pulumi.Output[str] | None = None
        self.ipv6: pulumi.Output[str] | None = None
        self.server: pulumi.CustomResource | None = None
        self.dns_records: list[Any] = []
        self.machine = machine = args.machine
        self.vars: local.Command | None = None
        self.deploy: local.Command | None = None  # the deploy step (graph.deploy), for machines with deploy settings
        self.deployed: dict[str, pulumi.Output[Any]] = {}  # its outputs: system, reboot_required
        self.install: local.Command | None = None  # the install step (graph.install), for cloud NixOS machines
        self.installed: dict[str, Any] = {}  # its outputs: install, host_key_fingerprint, reinstall_required
        generators = args.fleet.generators_of(machine)
        if generators:
            from fleet_sdk.graph.steps import vars_step

            self.vars = vars_step(machine.name, generators, args.settings, self._child)

    def provision(self, fleet: Fleet, clouds: dict[str, Cloud], dns: CloudflareZone | None) -> None:
        """The machine's cloud resources, by its host's plug-in (its shared component in `clouds`)."""
        host, machine = self.machine.host, self.machine
        if machine.cloud and host is not None:
            plugin = plugin_for(host)
            assert plugin is not None  # check_plugins refused the fleet before
            server = clouds[plugin.kind].server(fleet, machine, self._child)
            self.server, self.ipv4, self.ipv6 = server.resource, server.ipv4, server.ipv6
            if host.dns_records:
                assert dns is not None
                # children of the machine: disabling it removes its records with its server
                self.dns_records = dns.records(machine.name, server.ipv4, server.ipv6, parent=self)
        # No register_outputs, the one component without: its round trip per machine (a task and a
        # thread hop under mocks) cost a tenth to a fifth of bench/plan.py's bare-Pulumi floor at
        # 100-300 machines, and the addresses already reach the Fleet's outputs and `machines`.

    @property
    def child_options(self) -> pulumi.ResourceOptions:
        """Options of the machine's children: parented to it."""
        return self._child

    def addresses(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ipv4": self.ipv4}
        if self.ipv6 is not None:
            out["ipv6"] = self.ipv6
        return out

    def outputs(self) -> dict[str, Any]:
        """Its public addresses when it has cloud resources, and what its deploy step reported."""
        return {**(self.addresses() if self.machine.cloud else {}), **self.installed, **self.deployed}


@dataclass(frozen=True)
class FleetArgs:
    fleet: Fleet
    settings: StackSettings


class FleetComponent(pulumi.ComponentResource):
    """The whole fleet (`fleet:index:Fleet`, composite): its machines, the shared components of the
    clouds its enabled machines use, its ZeroTier networks. Named after the fleet by deploy_fleet.

    A cloud whose credential names a clan secret gets an explicit provider with it; otherwise its
    resources use Pulumi's default provider (hcloud:token, GOOGLE_CREDENTIALS, cloudflare:apiToken)."""

    def __init__(self, name: str, args: FleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        fleet, settings = _declared(args.fleet, args.settings), args.settings  # the flake's generators too
        # Check everything that can be known before registering anything.
        self.notes: list[str] = []
        settings.check(fleet)
        check_plugins(fleet)
        used = cloudsecrets.clouds_of(fleet)
        credentials = cloudsecrets.credentials(settings, used, dry_run=pulumi.runtime.is_dry_run())
        for credential in credentials.values():
            if credential.note:
                self.notes.append(credential.note)
                pulumi.log.warn(credential.note)
        key_owner = _deploy_key_owner(fleet)
        found = None
        if key_owner is None and any(m.cloud for m in fleet.machines):
            found = deploykey.read_public_key(settings.repo)
            if found is None:
                if not pulumi.runtime.is_dry_run():
                    raise DeployKeyMissingError(deploykey.missing_message(settings.repo))
                self.notes.append(deploykey.missing_message(settings.repo))
                pulumi.log.warn(self.notes[-1])
        super().__init__("fleet:index:Fleet", name, None, opts)
        self.fleet = fleet
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        self.machines = {
            m.name: MachineComponent(m.name, MachineArgs(fleet, m, settings), child) for m in fleet.machines
        }
        public_key: pulumi.Input[str]
        if key_owner is not None:
            # the deploy key comes out of the vars step, so a first `pulumi up` generates it first
            from fleet_sdk.graph.steps import DEPLOY_KEY_VAR, public_value

            step = self.machines[key_owner].vars
            assert step is not None
            public_key = public_value(step.stdout, key_owner, DEPLOY_KEY_VAR)
        else:
            public_key = found if found is not None else _unknown_string()
        secrets = {cloud: _secret(c) for cloud, c in credentials.items()}
        self.clouds = _clouds(name, fleet, public_key, secrets, child)
        self.dns: CloudflareZone | None = None
        if "cloudflare" in used:
            from fleet_sdk.graph.clouds.cloudflare import CloudflareZone, CloudflareZoneArgs

            zone = settings.cloudflare_zone
            assert zone is not None  # settings.check refused it before
            self.dns = CloudflareZone(zone, CloudflareZoneArgs(zone, secrets.get("cloudflare")), child)
        for component in self.machines.values():
            component.provision(fleet, self.clouds, self.dns)
        from fleet_sdk.graph.deploy import deploy_steps
        from fleet_sdk.graph.install import install_steps

        install_steps(fleet, self.machines, settings)
        deploy_steps(fleet, self.machines, settings)
        from fleet_sdk.graph.zerotier import networks

        self.zerotier: dict[str, ZeroTierNetwork] = networks(fleet, self.machines, settings, child)
        self.outputs: FleetOutputs = {"machines": self.machine_outputs()}
        if self.zerotier:
            self.outputs["zerotier"] = {instance: net.outputs() for instance, net in self.zerotier.items()}
        self.register_outputs(dict(self.outputs))

    def machine_outputs(self) -> dict[str, dict[str, Any]]:
        """Public addresses of every machine with cloud resources, deploy results of every deployed one."""
        return {name: c.outputs() for name, c in self.machines.items() if c.machine.cloud or c.deploy is not None}


def _declared(fleet: Fleet, settings: StackSettings) -> Fleet:
    """The fleet with the generators its flake declares (fleet_sdk.vars.declared), as `fleet vars
    generate` run by the vars steps sees it; evaluated once per program run (a fleet `fleet plan`
    merged is not merged again), from the cache of an unchanged flake."""
    from fleet_sdk.tools.runner import LOCAL
    from fleet_sdk.vars.declared import declared_fleet

    declared = declared_fleet(LOCAL, fleet, settings)
    if declared.note:
        pulumi.log.info(declared.note)
    return declared.fleet


def _clouds(
    name: str,
    fleet: Fleet,
    public_key: pulumi.Input[str],
    secrets: dict[str, pulumi.Output[str]],
    opts: pulumi.ResourceOptions,
) -> dict[str, Cloud]:
    """The shared component of each cloud the enabled machines use, in the order they first appear."""
    clouds: dict[str, Cloud] = {}
    for m in fleet.machines:
        plugin = plugin_for(m.host) if m.cloud and m.host is not None else None
        if plugin is not None and plugin.kind not in clouds:
            clouds[plugin.kind] = plugin.component(name, CloudArgs(fleet, public_key, secrets.get(plugin.kind)), opts)
    return clouds


def _deploy_key_owner(fleet: Fleet) -> str | None:
    """The first machine declaring the shared deploy-key generator (cloud machines first)."""
    declaring = [m for m in fleet.machines if any(g.name == "deploy-key" for g in fleet.generators_of(m))]
    declaring.sort(key=lambda m: not m.cloud)
    return declaring[0].name if declaring else None


def deploy_fleet(fleet: Fleet, settings: StackSettings | None = None) -> FleetOutputs:
    """Materialise `fleet` in the running Pulumi program and return its outputs: each machine's
    addresses and deploy results (`machines`) and its ZeroTier networks (`zerotier`, when it has any).

    Nothing is exported: the program does that (`run_program` under these names), so a program can
    rename them or deploy two fleets side by side."""
    if settings is None:
        settings = settings_from_pulumi_config()
    return FleetComponent(fleet.name, FleetArgs(fleet, settings)).outputs


def export_outputs(outputs: FleetOutputs) -> None:
    """Export a fleet's outputs as stack outputs under their own names (`machines`, `zerotier`)."""
    for name, value in outputs.items():
        pulumi.export(name, value)


def run_program(project_dir: Path) -> None:
    """The body of a project's __main__.py: load stacks/<stack>.py, deploy its fleet and export its
    outputs (`machines`, `zerotier`).

    A FleetError becomes a pulumi.RunError, which Pulumi prints without a traceback.
    """
    from fleet_sdk.stack.settings import load_fleet

    try:
        settings = settings_from_pulumi_config(project_dir)
        export_outputs(deploy_fleet(load_fleet(project_dir, pulumi.get_stack(), settings), settings))
    except FleetError as e:
        raise pulumi.RunError(str(e)) from None
