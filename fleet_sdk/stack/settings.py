"""Stack configuration and stack programs, read without Pulumi.

`pulumi up` hands the program its config; `fleet plan` reads the same values from Pulumi.yaml and
Pulumi.<stack>.yaml (plus `-c KEY=VALUE` overrides) so both build the same Fleet from stacks/<stack>.py.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import json
import os
import re
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fleet_sdk.errors import ConfigError, FleetError, SpecError, StackError
from fleet_sdk.spec import Fleet

SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 (a placeholder, not a secret)

# Stack config keys naming the clan secret (sops/secrets/<name>/secret of the fleet repository) that
# holds a cloud's credential; unset, the cloud's default provider reads its own config (hcloud:token …).
CREDENTIAL_KEYS = {
    "hetzner": "fleet:hetznerTokenSecret",
    "gcp": "fleet:gcpCredentialsSecret",
    "cloudflare": "fleet:cloudflareTokenSecret",
}
CLOUDFLARE_ZONE_KEY = "fleet:cloudflareZone"
# An empty fleet:enabled plans zero machines, which `pulumi up` turns into deleting every unprotected
# server: it needs this explicit opt-in.
ALLOW_EMPTY_KEY = "fleet:allowEmpty"
# Every fleet: key the SDK reads; any other fleet: key is a typo (a stack's own keys use its namespace).
SDK_KEYS = (
    "fleet:repo",
    "fleet:flake",
    "fleet:enabled",
    ALLOW_EMPTY_KEY,
    *CREDENTIAL_KEYS.values(),
    CLOUDFLARE_ZONE_KEY,
    "fleet:closureProbe",  # read by fleet_sdk.deploy.probe
)
_STACK_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
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
        check_keys(values)
        repo = Path(_text("fleet:repo", values.get("fleet:repo", ".")))
        enabled = values.get("fleet:enabled")
        allow_empty = _boolean(ALLOW_EMPTY_KEY, values.get(ALLOW_EMPTY_KEY, "false"))
        return cls(
            repo=repo if repo.is_absolute() else (project_dir / repo),
            flake=_text("fleet:flake", values.get("fleet:flake", ".")),
            enabled=None if enabled is None else _enabled(enabled, allow_empty),
            project=project_dir,
            values=dict(values),
            credential_secrets={
                # an empty name is cloudsecrets' to refuse, as every malformed one
                cloud: _text(key, values[key], empty=True)
                for cloud, key in CREDENTIAL_KEYS.items()
                if key in values
            },
            cloudflare_zone=_zone(values.get(CLOUDFLARE_ZONE_KEY)),
        )

    def check(self, fleet: Fleet) -> None:
        """Refuse, before anything is registered, a fleet these settings cannot serve."""
        wanting = [m.name for m in fleet.machines if m.host is not None and m.host.dns_records]
        if wanting and self.cloudflare_zone is None:
            names = ("machine " if len(wanting) == 1 else "machines ") + ", ".join(repr(n) for n in wanting)
            raise ConfigError(
                f"{names}: host.dns=True needs the Cloudflare zone of its records, but stack config "
                f"{CLOUDFLARE_ZONE_KEY} is not set; set it (`pulumi config set {CLOUDFLARE_ZONE_KEY} example.net`) "
                "or drop dns=True"
            )


def check_keys(keys: Iterable[str]) -> None:
    """Refuse a fleet: key the SDK does not read: a misspelt key would silently fall back to its
    default (fleet:enable for fleet:enabled would enable every machine)."""
    unknown = sorted(k for k in keys if k.startswith("fleet:") and k not in SDK_KEYS)
    if not unknown:
        return
    problems = []
    for key in unknown:
        close = difflib.get_close_matches(key.lower(), [k.lower() for k in SDK_KEYS], n=1, cutoff=0.6)
        guess = f" (did you mean {next(k for k in SDK_KEYS if k.lower() == close[0])}?)" if close else ""
        problems.append(f"{key}: not a stack config key of fleet_sdk{guess}")
    raise ConfigError(
        "\n".join(problems) + f"\nthe fleet: keys are {', '.join(SDK_KEYS)}; a stack's own settings belong in "
        "its project's namespace (<project>:<key>)"
    )


def _text(key: str, raw: str, empty: bool = False) -> str:
    """A key whose value is one string (a path, a flake reference, a secret name)."""
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = raw
    if isinstance(parsed, list | dict) or not (empty or raw.strip()):
        raise ConfigError(f"{key}: expected a non-empty string (a path or a name), got {raw!r}")
    return raw


def _boolean(key: str, raw: str) -> bool:
    if raw.strip().lower() not in ("true", "false"):
        raise ConfigError(f"{key}: expected true or false, got {raw!r}")
    return raw.strip().lower() == "true"


def _zone(raw: str | None) -> str | None:
    if raw is None:
        return None
    zone = _text(CLOUDFLARE_ZONE_KEY, raw).strip().rstrip(".").lower()
    if not _DOMAIN.match(zone):
        raise ConfigError(f"{CLOUDFLARE_ZONE_KEY}: {raw!r} is not a domain name; give the zone, e.g. example.net")
    return zone


def _enabled(raw: str, allow_empty: bool) -> tuple[str, ...]:
    names = _name_list("fleet:enabled", raw)
    if not names and not allow_empty:
        raise ConfigError(
            f"fleet:enabled is empty ({raw!r}): no machine would keep its cloud resources, and `pulumi up` "
            "would delete every unprotected server. Name the machines to enable, remove the key to enable "
            f"them all, or set {ALLOW_EMPTY_KEY}: true to disable every machine"
        )
    return names


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
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML ({where}{getattr(e, 'problem', None) or e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; repair it or restore it from git") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror}); it should be a YAML file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _not_a_file(path: Path, error: type[FleetError]) -> None:
    """Refuse a folder or a broken link where a file is expected (is_file() alone says "missing")."""
    if os.path.lexists(path) and not path.is_file():
        raise error(f"{path}: not a file (a folder, or a link that leads nowhere or loops); it should be one")


def _mapping(path: Path, data: dict[str, Any], key: str) -> dict[Any, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {key}: expected a mapping of config keys, got {type(value).__name__}")
    return value


def _config_string(value: Any) -> str:
    """Pulumi hands structured config to programs as JSON text and scalars as their text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _qualify(key: str, project: str, where: str) -> str:
    """`ns:key` as Pulumi parses config keys: a bare key gets the project's namespace, the legacy
    `ns:config:key` is `ns:key`, anything else is refused."""
    parts = key.split(":")
    if len(parts) == 3 and parts[1] == "config":
        parts = [parts[0], parts[2]]
    if len(parts) == 1:
        parts = [project, parts[0]]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"{where}: config key {key!r} is not of the form <namespace>:<name> or <name>")
    return ":".join(parts)


def _stack_value(path: Path, key: str, value: Any) -> str | None:
    """A stack file value as Pulumi hands it over; None for a secure (encrypted) one."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        if not isinstance(value["secure"], str):
            raise ConfigError(f"{path}: {key}: secure: expected the ciphertext `pulumi config set --secret` writes")
        return None
    if value is None:
        raise ConfigError(f"{path}: {key} has no value; give it one or remove the key")
    return _config_string(value)


def load_stack_config(project_dir: Path, stack: str, overrides: Sequence[str] = ()) -> StackConfig:
    if not _STACK_NAME.match(stack):  # it names files: Pulumi.<stack>.yaml, stacks/<stack>.py
        raise ConfigError(
            f"--stack {stack!r}: a stack name is letters, digits, '-', '_' and '.' (Pulumi's rule), e.g. prod"
        )
    project_path = project_dir / "Pulumi.yaml"
    project_file = _read_yaml(project_path)
    project = project_file.get("name")
    if not project or not isinstance(project, str):
        raise ConfigError(f"{project_path}: name: expected the project's name (a string), got {project!r}")
    values: dict[str, str] = {}
    secrets: set[str] = set()
    for key, spec in _mapping(project_path, project_file, "config").items():
        # a declaration ({type, default, …}) or, Pulumi's short form, the default value itself
        default = spec.get("default") if isinstance(spec, dict) else spec
        if default is not None:
            values[_qualify(str(key), project, project_path.name)] = _config_string(default)
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    _not_a_file(stack_file, ConfigError)
    if not stack_file.is_file():
        raise ConfigError(f"no stack settings file {stack_file.name} in {project_dir}; is {stack!r} a stack?")
    for key, value in _mapping(stack_file, _read_yaml(stack_file), "config").items():
        full = _qualify(str(key), project, stack_file.name)
        text = _stack_value(stack_file, full, value)
        # the ciphertext needs the stack's secrets provider; the plan never needs the value
        values[full] = SECRET_PLACEHOLDER if text is None else text
        if text is None:
            secrets.add(full)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"-c {item!r}: expected KEY=VALUE")
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = raw
        values[_qualify(key, project, f"-c {item!r}")] = _config_string(parsed)
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
    """Run stacks/<stack>.py's `build(settings)` and apply fleet:enabled.

    What goes wrong in the program (a syntax error, an exception, a `build` of the wrong shape) is a
    StackError naming the file and line; the original exception is its cause, for `--debug`."""
    path = project_dir / "stacks" / f"{stack}.py"
    shown = str(path.relative_to(project_dir))
    _not_a_file(path, StackError)
    if not path.is_file():
        raise StackError(f"stack {stack!r} has no program: create {shown} defining build()")
    module_name = f"fleet_stacks_{stack.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:  # also IndentationError, and a program that is not UTF-8
        raise StackError(f"{shown}:{e.lineno or 1}: {type(e).__name__}: {e.msg}; fix the program") from e
    except (FleetError, ValidationError, KeyboardInterrupt):
        raise
    except BaseException as e:  # SystemExit too: a program must not end the command
        raise _program_error(e, path, shown) from e
    build = getattr(module, "build", None)
    if not callable(build):
        raise StackError(f"{shown}: define build(settings: StackSettings) -> Fleet")
    at = f"{shown}:{build.__code__.co_firstlineno}" if inspect.isfunction(build) else shown
    _check_signature(build, at)
    try:
        fleet = build(settings)
    except ValidationError as e:
        raise SpecError(describe_validation_error(e)) from None
    except (FleetError, KeyboardInterrupt):
        raise
    except BaseException as e:
        raise _program_error(e, path, shown) from e
    if not isinstance(fleet, Fleet):
        raise StackError(
            f"{at}: build() returned {type(fleet).__name__}, not a fleet_sdk.spec.Fleet; "
            "return Fleet(name=…, machines=(…))"
        )
    fleet = fleet.with_enabled(settings.enabled)
    settings.check(fleet)
    return fleet


def _check_signature(build: Any, at: str) -> None:
    try:
        signature = inspect.signature(build)
    except (TypeError, ValueError):  # a builtin or an object without one: let the call decide
        return
    try:
        signature.bind(StackSettings(repo=Path(".")))
    except TypeError:
        raise StackError(
            f"{at}: build{signature} must take one argument, the stack's settings: "
            "def build(settings: StackSettings) -> Fleet"
        ) from None


def _program_error(e: BaseException, path: Path, shown: str) -> StackError:
    """`stacks/<stack>.py:<line>: in <function>: <exception>` at the program's innermost line."""
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if f.filename == str(path)]
    where = f"{shown}:{ours[-1].lineno}: in {ours[-1].name}" if ours else shown
    raised = ""
    if frames and frames[-1].filename != str(path):
        raised = f" (raised in {Path(frames[-1].filename).name}:{frames[-1].lineno})"
    text = str(e) if not isinstance(e, SystemExit) else f"exit({e.code!r})"
    return StackError(
        f"{where}: {type(e).__name__}: {text}{raised}; fix the stack program (`--debug` shows the traceback)"
    )
