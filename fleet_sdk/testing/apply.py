"""An applier: a Pulumi program applied as `pulumi up` would apply it, on the offline mock runtime
(fleet_sdk.graph.offline), with every `command:local:Command` run for real as pulumi-command runs
it (fleet_sdk.testing.localcommand), and state kept between applies.

    state = ApplyState()
    first = apply_program(program, state, project="demo", stack="dev", config=config)
    assert first.ran() == ["web-vars", "web-deploy"]
    assert apply_program(program, state, project="demo", stack="dev", config=config).ran() == []

A command runs inside the mock monitor's RegisterResource, which the SDK sends only once the
resource's inputs and `depends_on` resolved, and whose answer (its URN and outputs) is what its
dependents wait for: commands run in dependency order, independent ones in parallel (on the mock
runtime's executor threads). Each registration is compared with the state the test keeps: a new
command is created (its `create` runs), one whose `triggers` (or `replace_on_changes` inputs) changed
is replaced (`create` again, then the old `delete` if it has one), one with other changed inputs is
updated (`update`, else `create`), inputs named in `ignore_changes` are not compared, and an unchanged
one runs nothing and answers its previous outputs. A failing command raises CommandError naming the
resource: the program fails, as `pulumi up` does, and its dependents never run; the state keeps what
finished (a failed create is not recorded, a failed update keeps the old entry). After a successful
apply, resources the program no longer declares are deleted (a command's `delete`, if any) and leave
the state.

Other custom resources (servers, keys, firewalls, providers) get the FleetMocks answer when created,
overlaid with what the test's `cloud_outputs(type, name, inputs)` returns (e.g. a server's
`ipv4Address`), and keep their id and outputs in later applies.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from typing_extensions import override

from fleet_sdk.errors import CommandError
from fleet_sdk.graph.offline import SECRET, FleetMocks, RecordedGraph, Recorder, recorded_graph
from fleet_sdk.testing.localcommand import (
    COMMAND,
    CommandRun,
    Invocation,
    Operation,
    change,
    command_text,
    has_secret,
    keep_ignored,
    parse_duration,
    plain,
    run,
    wrap_secret,
)

DEFAULT_TIMEOUT = 600.0

# (type, name, inputs) -> outputs to give a custom resource when it is created, or None
CloudOutputs = Callable[[str, str, Mapping[str, Any]], Mapping[str, Any] | None]


@dataclass
class StateEntry:
    """One custom resource as the state holds it: its type, id, inputs and outputs."""

    type: str
    name: str
    id: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class ApplyState:
    """What the applies of one stack leave behind (URN -> entry), kept by the test between applies."""

    resources: dict[str, StateEntry] = field(default_factory=dict)
    history: list[CommandRun] = field(default_factory=list)  # every command run on it, failed ones too

    def __contains__(self, urn: object) -> bool:
        return urn in self.resources

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.resources))

    def entry(self, name: str, type_: str = COMMAND) -> StateEntry:
        """The one resource of `type_` named `name`."""
        found = [e for e in self.resources.values() if e.type == type_ and e.name == name]
        if len(found) != 1:
            raise LookupError(f"{len(found)} resources of type {type_} named {name!r} in the state")
        return found[0]

    def outputs(self, name: str, type_: str = COMMAND) -> dict[str, Any]:
        """The plain outputs (secrets unwrapped) of the resource of `type_` named `name`."""
        return dict(plain(self.entry(name, type_).outputs))


@dataclass
class ApplyResult:
    """One successful apply: the program's registrations and outputs (`graph`) and the commands
    that ran (`runs`, in the order they finished; deletions last)."""

    graph: RecordedGraph
    runs: list[CommandRun]

    @property
    def outputs(self) -> dict[str, Any]:
        return self.graph.outputs

    def ran(self) -> list[str]:
        """Names of the resources whose command ran, sorted."""
        return sorted(r.name for r in self.runs)

    def run(self, name: str) -> CommandRun:
        """The run of the resource named `name` (the last, when it ran twice)."""
        found = [r for r in self.runs if r.name == name]
        if not found:
            raise LookupError(f"no command of {name!r} ran; ran: {self.ran()}")
        return found[-1]


class ApplyMocks(FleetMocks):
    """The mocks of one apply (like a `pulumi up`, not a preview): commands run, the rest is mocked."""

    def __init__(
        self,
        state: ApplyState,
        *,
        timeout: float,
        environ: Mapping[str, str],
        cwd: Path,
        cloud_outputs: CloudOutputs | None,
    ) -> None:
        super().__init__(preview=False)
        numbers = [int(e.id) for e in state.resources.values() if e.id and e.id.isdigit()]
        self._ids = itertools.count(max(numbers, default=0) + 1)  # new ids never repeat an old one
        self.state = state
        self.timeout = timeout
        self.environ = dict(environ)
        self.cwd = cwd
        self.cloud_outputs = cloud_outputs
        self.runs: list[CommandRun] = []
        self.registered: set[str] = set()
        self._current = threading.local()
        self._state_lock = threading.Lock()

    def registering(self, urn: str, request: Any) -> None:
        """Called by ApplyRecorder on the thread that then calls new_resource."""
        self._current.value = (urn, request)

    @override
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        current, self._current.value = getattr(self._current, "value", None), None
        if not args.custom or current is None:  # a component, or a read (`get`): the mocks' answer
            return super().new_resource(args)
        urn, request = current
        with self._state_lock:
            self.registered.add(urn)
            old = self.state.resources.get(urn)
        inputs = dict(args.inputs)
        if old is not None:
            inputs = keep_ignored(old.inputs, inputs, request.ignoreChanges)
        if args.typ == COMMAND:
            entry = self._command(urn, args.name, inputs, old, request)
        else:
            entry = self._other(args, inputs, old)
        with self._state_lock:
            self.state.resources[urn] = entry
        return entry.id, dict(entry.outputs)

    def _other(
        self, args: pulumi.runtime.MockResourceArgs, inputs: dict[str, Any], old: StateEntry | None
    ) -> StateEntry:
        """A resource that is not a command: created by the mocks (plus `cloud_outputs`), then kept."""
        if old is not None:  # an update keeps the id and what the cloud computed
            return StateEntry(args.typ, args.name, old.id, inputs, {**old.outputs, **inputs})
        id_, outputs = super().new_resource(pulumi.runtime.MockResourceArgs(args.typ, args.name, inputs, custom=True))
        given = self.cloud_outputs(args.typ, args.name, plain(inputs)) if self.cloud_outputs else None
        return StateEntry(args.typ, args.name, id_, inputs, {**outputs, **(given or {})})

    def _command(self, urn: str, name: str, inputs: dict[str, Any], old: StateEntry | None, request: Any) -> StateEntry:
        what = change(old.inputs if old else None, inputs, request.replaceOnChanges)
        if what == "same":
            assert old is not None
            return old
        timeouts = request.customTimeouts if request.HasField("customTimeouts") else None
        limit = getattr(timeouts, "update" if what == "update" else "create", "")
        first = bool(request.deleteBeforeReplace)
        if old is not None and what == "replace" and first:
            self._delete(urn, old, getattr(timeouts, "delete", ""))
        done = self._run(urn, name, what, inputs, old if what == "update" else None, limit)
        outputs = dict(inputs)
        if done is not None:
            secret = has_secret(inputs)
            outputs["stdout"], outputs["stderr"] = wrap_secret(done.stdout, secret), wrap_secret(done.stderr, secret)
        else:  # nothing to run (no create text): the outputs stay as they were, or empty
            previous = old.outputs if old is not None else {}
            outputs |= {k: previous.get(k, "") for k in ("stdout", "stderr")}
        if old is not None and what == "replace" and not first:
            self._delete(urn, old, getattr(timeouts, "delete", ""))  # create before delete, the default
        id_ = old.id if old is not None and what == "update" else f"{name}-{os.urandom(4).hex()}"
        return StateEntry(COMMAND, name, id_, inputs, outputs)

    def _run(
        self, urn: str, name: str, operation: Operation, inputs: Mapping[str, Any], old: StateEntry | None, limit: str
    ) -> CommandRun | None:
        text = command_text(operation, plain(inputs))
        if text is None:
            return None
        previous = old.outputs if old is not None else None
        step = Invocation(urn, name, operation, text, plain(inputs), previous)
        deadline = parse_duration(limit) or self.timeout
        done = run(step, environ=self.environ, cwd=self.cwd, timeout=deadline)
        with self._state_lock:
            self.runs.append(done)
            self.state.history.append(done)
        if not done.ok:
            # as `pulumi up` fails: the program stops, naming the resource, with the command's stderr
            argv = done.argv if not has_secret({k: inputs.get(k) for k in ("create", "update", "delete")}) else (
                *done.argv[:-1], SECRET)  # fmt: skip
            ended = f"killed after {deadline:g} s" if done.exit_code is None else f"exit status {done.exit_code}"
            hint = f"resource {urn}: {operation} failed ({ended})"
            raise CommandError(argv, done.exit_code, done.stderr.encode(), hint)
        return done

    def _delete(self, urn: str, old: StateEntry, limit: str) -> None:
        if command_text("delete", plain(old.inputs)) is not None:
            self._run(urn, old.name, "delete", old.inputs, old, limit)

    def prune(self) -> None:
        """Delete what the program no longer declares, last created first (commands run `delete`)."""
        for urn in reversed([u for u in self.state if u not in self.registered]):
            entry = self.state.resources[urn]
            if entry.type == COMMAND:
                self._delete(urn, entry, "")
            del self.state.resources[urn]


class ApplyRecorder(Recorder):
    """The Recorder of an apply: hands each request (URN, options) to the mocks before they answer it."""

    def __init__(self, mocks: FleetMocks) -> None:
        assert isinstance(mocks, ApplyMocks)
        super().__init__(mocks)
        self.apply_mocks = mocks

    @override
    def RegisterResource(self, request: Any) -> Any:
        self.apply_mocks.registering(self.make_urn(request.parent, request.type, request.name), request)
        return super().RegisterResource(request)


def apply_program(
    program: Callable[[], Any],
    state: ApplyState,
    *,
    project: str = "fleet",
    stack: str = "test",
    config: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    cloud_outputs: CloudOutputs | None = None,
) -> ApplyResult:
    """Apply `program` (as recorded_graph runs it) to `state`, which it updates in place.

    `timeout`: seconds each command may take, unless its `custom_timeouts` say otherwise.
    `environ`: the environment commands start from (default: this process's, as `pulumi up` hands its
    own to the provider); `cwd`: where they run without `dir` (default: the current directory).
    `cloud_outputs(type, name, inputs)`: outputs for a custom resource that is not a command, when it
    is created. A failing command raises CommandError (argv, exit code or None at the deadline,
    stderr, and the resource's URN in its message; what ran is in `state.history`); an exception of
    the program propagates unchanged."""
    mocks = ApplyMocks(
        state,
        timeout=timeout,
        environ=os.environ if environ is None else environ,
        cwd=Path.cwd() if cwd is None else cwd,
        cloud_outputs=cloud_outputs,
    )

    def body() -> Any:
        asyncio.get_running_loop().set_exception_handler(_quiet_failed_steps)
        return program()

    try:
        graph = recorded_graph(
            body, preview=False, project=project, stack=stack, config=config, mocks=mocks, monitor=ApplyRecorder
        )
    except CommandError:
        gc.collect()  # the failed registrations' futures, reported (quietly) now rather than at any later time
        raise
    mocks.prune()
    return ApplyResult(graph, list(mocks.runs))


def _quiet_failed_steps(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: a failed command fails the registration of its resource and of
    everything waiting for it, whose futures the SDK never reads once the program failed; `pulumi up`
    shows the one error, and so does the applier. Anything else is reported as usual."""
    if isinstance(context.get("exception"), CommandError) and "never retrieved" in str(context.get("message")):
        return
    loop.default_exception_handler(context)
