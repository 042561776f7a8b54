"""A Pulumi mock runtime that records every registration (reference/pulumi.md §3).

`recorded_graph(program)` runs a Pulumi program in-process, without the Pulumi CLI, an engine or
credentials, and returns what it registered: type, name, URN, parent, dependencies (and per input,
which of them feed it: propertyDependencies), inputs and options, and the stack outputs. Mocks are
installed per call, so each test gets its own runtime state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await
from typing_extensions import override

MOCK_DEPLOY_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockMockMockMockMockMockMockMockMockMockMock"
COMPUTED = "<computed>"
SECRET = "[secret]"  # noqa: S105 (a placeholder, not a secret)
STACK_TYPE = "pulumi:pulumi:Stack"
ZONE_LOOKUP = "cloudflare:index/getZone:getZone"
# invokes that read the cloud: offline, a preview cannot know their answer
CLOUD_LOOKUPS = frozenset({ZONE_LOOKUP})

# Pulumi's wire signatures for special values inside a property struct
_SIG_KEY = rpc._special_sig_key
_SECRET_SIG = rpc._special_secret_sig
_RESOURCE_SIG = rpc._special_resource_sig


@dataclass(frozen=True)
class RecordedResource:
    urn: str
    type: str
    name: str
    parent: str | None  # None for resources at the top of the stack
    custom: bool
    dependencies: tuple[str, ...]
    inputs: dict[str, Any]
    options: dict[str, Any]
    id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    # per input property, the resources whose outputs feed it (the request's propertyDependencies)
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class RecordedGraph:
    project: str
    stack: str
    preview: bool
    resources: list[RecordedResource]
    outputs: dict[str, Any]
    duplicate_urns: list[str]
    log: list[tuple[str, str]]  # (severity, message) from pulumi.log

    def by_urn(self) -> dict[str, RecordedResource]:
        return {r.urn: r for r in self.resources}

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> RecordedResource:
        found = [r for r in self.resources if r.type == type_ and r.name == name]
        if len(found) != 1:
            raise LookupError(f"{len(found)} resources of type {type_} named {name!r}")
        return found[0]

    def descendants(self, urn: str) -> list[RecordedResource]:
        """Resources whose parent chain reaches `urn` (not including it)."""
        children: dict[str | None, list[RecordedResource]] = {}
        for r in self.resources:
            children.setdefault(r.parent, []).append(r)
        out: list[RecordedResource] = []
        todo = [urn]
        while todo:
            for child in children.get(todo.pop(), []):
                out.append(child)
                todo.append(child.urn)
        return out


def wire_value(value: Any) -> Any:
    """A property struct value as plain JSON: unknowns and secrets shown, references as URNs."""
    if value == rpc.UNKNOWN:
        return COMPUTED
    if isinstance(value, list):
        return [wire_value(v) for v in value]
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return SECRET
        if sig == _RESOURCE_SIG:
            return value.get("urn", COMPUTED)
        return {k: wire_value(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Struct numbers are doubles
    return value


def _options(req: Any) -> dict[str, Any]:
    aliases = [json_format.MessageToDict(a) for a in req.aliases]
    opts: dict[str, Any] = {
        "protect": bool(req.protect) if req.HasField("protect") else False,
        "ignore_changes": sorted(req.ignoreChanges),
        "replace_on_changes": sorted(req.replaceOnChanges),
        "additional_secret_outputs": sorted(req.additionalSecretOutputs),
        "delete_before_replace": bool(req.deleteBeforeReplace),
    }
    if req.HasField("retainOnDelete"):
        opts["retain_on_delete"] = req.retainOnDelete
    if req.provider:
        # a provider reference is "<urn>::<id>"; the id is unknown in preview and a number under up
        # mocks, so only the URN is recorded and preview and up compare equal
        opts["provider"] = req.provider.rpartition("::")[0]
    if req.deletedWith:
        opts["deleted_with"] = req.deletedWith
    if req.importId:  # an existing server adopted (HetznerHost.server_id, GcpHost.instance_id)
        opts["import"] = req.importId
    if aliases:
        opts["aliases"] = aliases
    if req.HasField("customTimeouts"):
        opts["custom_timeouts"] = json_format.MessageToDict(req.customTimeouts)
    return opts


class FleetMocks(pulumi.runtime.Mocks):
    """Mocks that behave like a first `pulumi preview` (unknown ids and computed outputs) or, with
    preview=False, like a successful `pulumi up` (numeric ids, documentation-range IP addresses)."""

    def __init__(self, preview: bool) -> None:
        self.preview = preview
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # new_resource runs on executor threads

    @override
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if not args.custom:
            return None, state
        with self._lock:
            n = next(self._ids)
        # In preview a fresh resource has no id and its computed outputs are unknown.
        state.update(self.computed_outputs(args.typ, n, state, lambda v: rpc.UNKNOWN if self.preview else v))
        return (None if self.preview else str(n)), state

    def computed_outputs(
        self, type_: str, n: int, state: dict[str, Any], value: Callable[[Any], Any]
    ) -> dict[str, Any]:
        """Outputs the cloud computes on create, each passed through `value` (unknown in preview).
        Override for other resource types."""
        if type_ == "hcloud:index/server:Server":
            return {
                "ipv4Address": value(f"192.0.2.{n % 254 + 1}"),
                "ipv6Address": value(f"2001:db8:{n:x}::1"),
                "ipv6Network": value(f"2001:db8:{n:x}::/64"),
                "status": value("running"),
            }
        if type_ == "hcloud:index/sshKey:SshKey":
            return {"fingerprint": value(f"00:00:{n % 256:02x}")}
        if type_ == "gcp:compute/instance:Instance":
            nics = [dict(nic) for nic in state.get("networkInterfaces", [])]
            for nic in nics:
                nic["accessConfigs"] = [
                    {**ac, "natIp": value(f"198.51.100.{n % 254 + 1}")} for ac in nic.get("accessConfigs", [])
                ]
            return {"networkInterfaces": nics, "instanceId": value(str(n))}
        if type_ == "command:local:Command":
            return {"stdout": value(self.command_stdout(state)), "stderr": value("")}
        return {}

    def command_stdout(self, state: dict[str, Any]) -> str:
        """What a successful `fleet` step prints. For `vars generate <m> --json`: the machine's
        deploy key (a fixed test key), so graphs that read it resolve under `up` mocks."""
        words = str(state.get("create", "")).split()
        if "generate" in words and "--json" in words:
            machine = words[words.index("generate") + 1]
            return json.dumps({machine: {"deploy-key/id_ed25519.pub": MOCK_DEPLOY_KEY}})
        return ""

    @override
    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """Invokes under up mocks (in preview, CLOUD_LOOKUPS answer unknown, see Recorder.Invoke)."""
        if args.token == ZONE_LOOKUP:
            name = str((args.args.get("filter") or {}).get("name") or args.args.get("zoneId") or "")
            return {"id": mock_zone_id(name), "name": name, "status": "active"}, []
        return {}, []  # an empty failure list: the mock monitor iterates it


def mock_zone_id(zone: str) -> str:
    """The id the up mocks give a Cloudflare zone: 32 hex digits, as Cloudflare's, fixed per name."""
    return hashlib.sha256(f"zone:{zone}".encode()).hexdigest()[:32]


class Recorder(pulumi_mocks.MockMonitor):
    """A MockMonitor that keeps every RegisterResourceRequest and gives real-shaped URNs."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.requests: list[tuple[str, Any, Any]] = []  # (urn, request, response)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @override
    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # As the engine builds URNs: the child's type is qualified by its parent's whole type chain,
        # and resources at the top of the stack are not qualified by the Stack's type. (The stock
        # mock keeps only the parent's last type and prefixes top-level types with the Stack's.)
        if parent:
            qualified = parent.split("::")[2]
            if qualified != STACK_TYPE:
                type_ = f"{qualified}${type_}"
        return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), type_, name])

    @override
    def Invoke(self, request: Any) -> Any:
        # As the engine declines an invoke it cannot serve yet: the result is wholly unknown. Offline,
        # a preview cannot read the cloud; a real preview would show the value.
        if request.tok in CLOUD_LOOKUPS and isinstance(self.mocks, FleetMocks) and self.mocks.preview:
            return resource_pb2.ResourceInvokeResponse(unknown=True)
        return super().Invoke(request)  # type: ignore[no-untyped-call]

    @override
    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != STACK_TYPE:
            with self._lock:
                self.requests.append((response.urn, request, response))
                self.counts[response.urn] += 1
        return response


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, str]] = []

    @override
    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelname.lower(), record.getMessage()))


async def _resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        if not await value.is_known():
            return COMPUTED
        secret = await value.is_secret()
        inner = await value.future(with_unknowns=True)
        return SECRET if secret else await _resolve(inner)
    if isinstance(value, pulumi.output.Unknown):
        return COMPUTED
    if isinstance(value, Mapping):
        return {str(k): await _resolve(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [await _resolve(v) for v in value]
    return value


def recorded_graph(
    program: Callable[[], Any],
    *,
    preview: bool = True,
    project: str = "fleet",
    stack: str = "test",
    config: Mapping[str, str] | None = None,
    mocks: FleetMocks | None = None,
    monitor: Callable[[FleetMocks], Recorder] | None = None,
) -> RecordedGraph:
    """Run `program` under mocks and return every resource it registered, and its stack outputs:
    what it exports, and the mapping it returns (e.g. `lambda: deploy_fleet(fleet, settings)`).

    `config` holds `namespace:key` -> string values, as `pulumi config` would hand them over.
    `monitor` makes the Recorder from the mocks (a subclass sees each whole request, e.g. the
    applier of fleet_sdk.testing.apply). Exceptions raised by the program propagate unchanged.
    """
    with _own_event_loop():  # Pulumi binds its futures to the loop current when mocks are set
        return _record(program, preview, project, stack, config, mocks, monitor or Recorder)


def _record(
    program: Callable[[], Any],
    preview: bool,
    project: str,
    stack: str,
    config: Mapping[str, str] | None,
    mocks: FleetMocks | None,
    make_monitor: Callable[[FleetMocks], Recorder],
) -> RecordedGraph:
    mocks = mocks or FleetMocks(preview)
    monitor = make_monitor(mocks)
    logger = logging.getLogger(f"fleet_sdk.testing.{id(monitor)}")
    logger.propagate = False
    handler = _ListHandler()
    logger.addHandler(handler)
    pulumi.runtime.set_all_config(dict(config or {}))
    pulumi_settings.ROOT.set(None)  # a fresh root Stack for this run
    pulumi_mocks.set_mocks(mocks, project=project, stack=stack, preview=preview, logger=logger, monitor=monitor)
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    exported: dict[str, Any] = {}

    async def body() -> None:
        returned = program()
        if isinstance(returned, Mapping):
            # a program may return its outputs rather than export them, as a Node.js inline program
            # does; deploy_fleet's result is such a mapping, recorded as run_program exports it
            for name, value in returned.items():
                pulumi.export(str(name), value)
        root = pulumi_settings.get_root_resource()
        exported.update(await _resolve(getattr(root, "outputs", {})))

    try:
        _sync_await(run_pulumi_func(body))
    finally:
        logger.removeHandler(handler)
    resources = [_recorded(urn, req, resp, monitor) for urn, req, resp in monitor.requests]
    return RecordedGraph(
        project=project,
        stack=stack,
        preview=preview,
        resources=resources,
        outputs=exported,
        duplicate_urns=sorted(u for u, n in monitor.counts.items() if n > 1),
        log=handler.records,
    )


@contextlib.contextmanager
def _own_event_loop() -> Iterator[None]:
    """Fresh event loops for one graph, all closed after it: the main one, and the one Pulumi's
    mock monitor makes on each executor thread it calls into. Left open, they were finalized at
    interpreter exit after their self-pipes, and `fleet plan` printed an "Exception ignored …
    Invalid file descriptor" traceback one run in four. Inside a running loop, that one is used."""
    if asyncio._get_running_loop() is not None:
        yield
        return
    thread_loops: list[asyncio.AbstractEventLoop] = []

    def thread_loop() -> None:  # found by Pulumi's _ensure_event_loop on that thread
        thread_loops.append(asyncio.new_event_loop())
        asyncio.set_event_loop(thread_loops[-1])

    loop = asyncio.new_event_loop()
    loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="fleet-mock", initializer=thread_loop))
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        try:
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            for each in [loop, *thread_loops]:
                each.close()


def _recorded(urn: str, req: Any, resp: Any, monitor: Recorder) -> RecordedResource:
    parent = req.parent or None
    if parent and parent.split("::")[2] == STACK_TYPE:
        parent = None
    registered = monitor.resources.get(urn)
    return RecordedResource(
        urn=urn,
        type=req.type,
        name=req.name,
        parent=parent,
        custom=bool(req.custom),
        dependencies=tuple(sorted(set(req.dependencies))),
        inputs=wire_value(json_format.MessageToDict(req.object)),
        options=_options(req),
        id=resp.id or None,
        state=wire_value(dict(registered.state)) if registered else {},
        property_dependencies={
            prop: tuple(sorted(set(deps.urns))) for prop, deps in sorted(req.propertyDependencies.items()) if deps.urns
        },
    )
