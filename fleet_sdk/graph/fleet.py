"""The Fleet component: one machine component per machine, the clouds' shared resources beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from fleet_sdk.errors import FleetError
from fleet_sdk.sops import credentials as cloudsecrets
from fleet_sdk.spec import Fleet, GcpHost, HetznerHost, Machine
from fleet_sdk.stack.settings import SECRET_PLACEHOLDER, StackSettings
from fleet_sdk.vars import deploykey


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


class MachineComponent(pulumi.ComponentResource):
    """One machine (`fleet:index:Machine`); its vars step and cloud resources are its children."""

    # No class-level annotations: Pulumi reads a resource class's annotations (get_type_hints,
    # uncached) at every registration, which cost a tenth of the plan.
    def __init__(self, fleet: Fleet, machine: Machine, settings: StackSettings, opts: pulumi.ResourceOptions) -> None:
        super().__init__("fleet:index:Machine", machine.name, None, opts)
        self.ipv4: pulumi.Output[str] | None = None
        self.ipv6: pulumi.Output[str] | None = None
        self.server: pulumi.CustomResource | None = None
        self.machine = machine
        self.vars = None
        generators = fleet.generators_of(machine)
        if generators:
            from fleet_sdk.graph.steps import vars_step

            self.vars = vars_step(machine.name, generators, settings, parent=self)
        # No register_outputs: its round trip per machine costs a third of the component, and the
        # addresses already reach the stack output `machines`.

    def provision(self, fleet: Fleet, clouds: Clouds) -> None:
        """The machine's cloud resources, once the shared ones exist."""
        host, machine = self.machine.host, self.machine
        if machine.cloud and isinstance(host, HetznerHost):
            assert clouds.hetzner is not None
            self.server = server = clouds.hetzner.server(fleet, machine, host, parent=self)
            self.ipv4, self.ipv6 = server.ipv4_address, server.ipv6_address
            if host.dns:
                assert clouds.dns is not None
                # children of the machine: disabling it removes its records with its server
                clouds.dns.records(machine.name, server.ipv4_address, server.ipv6_address, parent=self)
        elif machine.cloud and isinstance(host, GcpHost):
            assert clouds.gcp is not None
            self.server = instance = clouds.gcp.instance(fleet, machine, host, parent=self)
            self.ipv4 = instance.network_interfaces.apply(_nat_ip)

    def addresses(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ipv4": self.ipv4}
        if self.ipv6 is not None:
            out["ipv6"] = self.ipv6
        return out


def _nat_ip(nics: Any) -> str | None:
    for nic in nics or []:
        for ac in (nic.get("access_configs") if isinstance(nic, dict) else nic.access_configs) or []:
            ip = ac.get("nat_ip") if isinstance(ac, dict) else ac.nat_ip
            if ip:
                return str(ip)
    return None


class Clouds:
    """The shared per-cloud components, created only for clouds the enabled machines use.

    A cloud whose credential names a clan secret gets an explicit provider with it; otherwise its
    resources use Pulumi's default provider (hcloud:token, GOOGLE_CREDENTIALS, cloudflare:apiToken)."""

    def __init__(
        self,
        fleet: Fleet,
        public_key: pulumi.Input[str],
        settings: StackSettings,
        credentials: dict[str, cloudsecrets.Credential],
        parent: pulumi.Resource,
    ) -> None:
        opts = pulumi.ResourceOptions(parent=parent)
        used = cloudsecrets.clouds_of(fleet)
        secrets = {cloud: _secret(c) for cloud, c in credentials.items()}
        self.hetzner = None
        if "hetzner" in used:
            from fleet_sdk.graph.clouds.hetzner import HetznerCloud

            self.hetzner = HetznerCloud(fleet, public_key, secrets.get("hetzner"), opts)
        self.gcp = None
        if "gcp" in used:
            from fleet_sdk.graph.clouds.gcp import GcpCloud

            self.gcp = GcpCloud(fleet, public_key, secrets.get("gcp"), opts)
        self.dns = None
        if "cloudflare" in used:
            from fleet_sdk.graph.clouds.cloudflare import CloudflareZone

            assert settings.cloudflare_zone is not None  # settings.check refused it before
            self.dns = CloudflareZone(settings.cloudflare_zone, secrets.get("cloudflare"), opts)


class FleetComponent(pulumi.ComponentResource):
    """The whole fleet (`fleet:index:Fleet`)."""

    def __init__(self, fleet: Fleet, settings: StackSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        # Check everything that can be known before registering anything.
        self.notes: list[str] = []
        settings.check(fleet)
        credentials = cloudsecrets.credentials(
            settings, cloudsecrets.clouds_of(fleet), dry_run=pulumi.runtime.is_dry_run()
        )
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
                    raise deploykey.DeployKeyMissingError(deploykey.missing_message(settings.repo))
                self.notes.append(deploykey.missing_message(settings.repo))
                pulumi.log.warn(self.notes[-1])
        super().__init__("fleet:index:Fleet", fleet.name, None, opts)
        self.fleet = fleet
        child = pulumi.ResourceOptions(parent=self)
        self.machines = {m.name: MachineComponent(fleet, m, settings, child) for m in fleet.machines}
        public_key: pulumi.Input[str]
        if key_owner is not None:
            # the deploy key comes out of the vars step, so a first `pulumi up` generates it first
            from fleet_sdk.graph.steps import DEPLOY_KEY_VAR, public_value

            step = self.machines[key_owner].vars
            assert step is not None
            public_key = public_value(step.stdout, key_owner, DEPLOY_KEY_VAR)
        else:
            public_key = found if found is not None else _unknown_string()
        self.clouds = Clouds(fleet, public_key, settings, credentials, parent=self)
        for component in self.machines.values():
            component.provision(fleet, self.clouds)
        from fleet_sdk.graph.zerotier import networks

        self.zerotier = networks(fleet, self.machines, settings, parent=self)
        self.register_outputs({})

    def addresses(self) -> dict[str, dict[str, Any]]:
        """Public addresses of every machine with cloud resources."""
        return {name: c.addresses() for name, c in self.machines.items() if c.machine.cloud}


def _deploy_key_owner(fleet: Fleet) -> str | None:
    """The first machine declaring the shared deploy-key generator (cloud machines first)."""
    declaring = [m for m in fleet.machines if any(g.name == "deploy-key" for g in fleet.generators_of(m))]
    declaring.sort(key=lambda m: not m.cloud)
    return declaring[0].name if declaring else None


def deploy_fleet(fleet: Fleet, settings: StackSettings | None = None) -> FleetComponent:
    """Materialise `fleet` in the running Pulumi program and export each machine's addresses."""
    if settings is None:
        settings = settings_from_pulumi_config()
    component = FleetComponent(fleet, settings)
    pulumi.export("machines", component.addresses())
    if component.zerotier:
        pulumi.export("zerotier", {name: net.outputs() for name, net in component.zerotier.items()})
    return component


def run_program(project_dir: Path) -> None:
    """The body of a project's __main__.py: load stacks/<stack>.py and deploy its fleet.

    A FleetError becomes a pulumi.RunError, which Pulumi prints without a traceback.
    """
    from fleet_sdk.stack.settings import load_fleet

    try:
        settings = settings_from_pulumi_config(project_dir)
        deploy_fleet(load_fleet(project_dir, pulumi.get_stack(), settings), settings)
    except FleetError as e:
        raise pulumi.RunError(str(e)) from None
