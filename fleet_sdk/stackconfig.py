"""Stack configuration and stack programs, read without Pulumi.

`pulumi up` hands the program its config; `fleet plan` reads the same values from Pulumi.yaml and
Pulumi.<stack>.yaml (plus `-c KEY=VALUE` overrides) so both build the same Fleet from stacks/<stack>.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fleet_sdk.errors import ConfigError, SpecError, StackError
from fleet_sdk.spec import Fleet, HetznerHost

SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 (a placeholder, not a secret)

# Stack config keys naming the clan secret (sops/secrets/<name>/secret of the fleet repository) that
# holds a cloud's credential; unset, the cloud's default provider reads its own config (hcloud:token …).
CREDENTIAL_KEYS = {
    "hetzner": "fleet:hetznerTokenSecret",
    "gcp": "fleet:gcpCredentialsSecret",
    "cloudflare": "fleet:cloudflareTokenSecret",
}
CLOUDFLARE_ZONE_KEY = "fleet:cloudflareZone"
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class StackConfig:
    """Config values of one stack as Pulumi hands them to a program: `ns:key` -> string."""

    project: str
    stack: str
    values: dict[str, str] = field(default_factory=dict)
    secret_keys: frozenset[str] = frozenset()


@dataclass(frozen=True)
class StackSettings:
    """The SDK's own keys (DESIGN §5), resolved against the project directory."""

    repo: Path
    flake: str = "."
    enabled: tuple[str, ...] | None = None  # None: every machine gets its cloud resources
    project: Path | None = None  # the Pulumi project (stacks/, Pulumi.<stack>.yaml) the steps load
    values: Mapping[str, str] = field(default_factory=dict)  # every config value, for the stack's own keys
    # clan secret names per cloud (CREDENTIAL_KEYS); a cloud not named uses its default provider
    credential_secrets: Mapping[str, str] = field(default_factory=dict)
    cloudflare_zone: str | None = None  # the zone holding the records of machines with dns=True

    def object(self, key: str, default: Any = None) -> Any:
        """A structured config value (JSON), e.g. settings.object("fleet:enabled", [])."""
        raw = self.values.get(key)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(f"{key}: expected JSON, got {raw!r}") from None

    @classmethod
    def from_values(cls, values: Mapping[str, str], project_dir: Path) -> StackSettings:
        repo = Path(values.get("fleet:repo", "."))
        enabled = values.get("fleet:enabled")
        return cls(
            repo=repo if repo.is_absolute() else (project_dir / repo),
            flake=values.get("fleet:flake", "."),
            enabled=None if enabled is None else _name_list("fleet:enabled", enabled),
            project=project_dir,
            values=dict(values),
            credential_secrets={cloud: values[key] for cloud, key in CREDENTIAL_KEYS.items() if key in values},
            cloudflare_zone=_zone(values.get(CLOUDFLARE_ZONE_KEY)),
        )

    def check(self, fleet: Fleet) -> None:
        """Refuse, before anything is registered, a fleet these settings cannot serve."""
        wanting = [m.name for m in fleet.machines if isinstance(m.host, HetznerHost) and m.host.dns]
        if wanting and self.cloudflare_zone is None:
            names = ("machine " if len(wanting) == 1 else "machines ") + ", ".join(repr(n) for n in wanting)
            raise ConfigError(
                f"{names}: host.dns=True needs the Cloudflare zone of its records, but stack config "
                f"{CLOUDFLARE_ZONE_KEY} is not set; set it (`pulumi config set {CLOUDFLARE_ZONE_KEY} example.net`) "
                "or drop dns=True"
            )


def _zone(raw: str | None) -> str | None:
    if raw is None:
        return None
    zone = raw.strip().rstrip(".").lower()
    if not _DOMAIN.match(zone):
        raise ConfigError(f"{CLOUDFLARE_ZONE_KEY}: {raw!r} is not a domain name; give the zone, e.g. example.net")
    return zone


def _name_list(key: str, raw: str) -> tuple[str, ...]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{key}: expected a list of machine names, e.g. ["cinnabar", "electrum"], got {raw!r}')
    return tuple(value)


def find_project_dir(start: Path) -> Path:
    """The nearest directory at or above `start` holding Pulumi.yaml."""
    for d in (start, *start.parents):
        if (d / "Pulumi.yaml").is_file():
            return d
    raise ConfigError(f"no Pulumi.yaml in {start} or above; run from the Pulumi project or pass --project DIR")


def default_stack(project_dir: Path) -> str:
    """The stack to use when none is named: the project's only Pulumi.<stack>.yaml."""
    stacks = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
    if len(stacks) == 1:
        return stacks[0]
    listed = ", ".join(stacks) or "none"
    raise ConfigError(f"name the stack with --stack; the project's stacks are: {listed}")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _config_string(value: Any) -> str:
    """Pulumi hands structured config to programs as JSON text and scalars as their text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _qualify(key: str, project: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def load_stack_config(project_dir: Path, stack: str, overrides: Sequence[str] = ()) -> StackConfig:
    project_file = _read_yaml(project_dir / "Pulumi.yaml")
    project = str(project_file.get("name") or "")
    if not project:
        raise ConfigError(f"{project_dir / 'Pulumi.yaml'}: no project name")
    values: dict[str, str] = {}
    secrets: set[str] = set()
    for key, spec in (project_file.get("config") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            values[_qualify(key, project)] = _config_string(spec["default"])
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise ConfigError(f"no stack settings file {stack_file.name} in {project_dir}; is {stack!r} a stack?")
    for key, value in (_read_yaml(stack_file).get("config") or {}).items():
        full = _qualify(str(key), project)
        if isinstance(value, dict) and set(value) == {"secure"}:
            # the ciphertext needs the stack's secrets provider; the plan never needs the value
            values[full] = SECRET_PLACEHOLDER
            secrets.add(full)
        else:
            values[full] = _config_string(value)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"-c {item!r}: expected KEY=VALUE")
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = raw
        values[_qualify(key, project)] = _config_string(parsed)
    return StackConfig(project, stack, values, frozenset(secrets))


def describe_validation_error(exc: ValidationError) -> list[str]:
    """pydantic's error list as our one-line problems: model, field path, message."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        problems.append(f"{exc.title}: {loc}: {err['msg']}" if loc else f"{exc.title}: {err['msg']}")
    return problems


def load_stack(
    project_dir: Path, stack: str, overrides: Sequence[str] = (), repo: Path | None = None
) -> tuple[StackConfig, StackSettings, Fleet]:
    """Config (file plus -c overrides, --repo), settings and Fleet as `pulumi up` would build them."""
    config = load_stack_config(project_dir, stack, overrides)
    if repo is not None:
        values = {**config.values, "fleet:repo": str(repo.resolve())}
        config = StackConfig(config.project, stack, values, config.secret_keys)
    settings = StackSettings.from_values(config.values, project_dir)
    return config, settings, load_fleet(project_dir, stack, settings)


def load_fleet(project_dir: Path, stack: str, settings: StackSettings) -> Fleet:
    """Run stacks/<stack>.py's `build(settings)` and apply fleet:enabled."""
    path = project_dir / "stacks" / f"{stack}.py"
    if not path.is_file():
        raise StackError(f"stack {stack!r} has no program: create {path.relative_to(project_dir)} defining build()")
    module_name = f"fleet_stacks_{stack.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        build = getattr(module, "build", None)
        if not callable(build):
            raise StackError(f"{path.name}: define build(settings: StackSettings) -> Fleet")
        fleet = build(settings)
    except ValidationError as e:
        raise SpecError(describe_validation_error(e)) from None
    if not isinstance(fleet, Fleet):
        raise StackError(f"{path.name}: build() returned {type(fleet).__name__}, not a fleet_sdk.spec.Fleet")
    fleet = fleet.with_enabled(settings.enabled)
    settings.check(fleet)
    return fleet
