"""`fleet vars generate`: plan, then run generators in dependency order, in parallel where they are
independent, storing each generator's files as one unit (reference/clan.md §4).

A lock on the repository serialises concurrent runs (and every other writer, vars.lock). A generator
that fails (or a run that is killed) leaves the store as it was for that generator; generators stored
before it stay. A run first repairs what an interrupted one left (vars.recovery): leftovers removed,
stored but untracked files `git add`ed.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from fleet_sdk.errors import FleetError, GeneratorError, VarsWriteError
from fleet_sdk.sops import operator_identities
from fleet_sdk.spec import Fleet
from fleet_sdk.tools import git
from fleet_sdk.tools.runner import LOCAL, Runner, kill_running
from fleet_sdk.vars import prompts as prompt_values
from fleet_sdk.vars.access import grant_shared
from fleet_sdk.vars.committer import Committer
from fleet_sdk.vars.execute import realise_final_scripts, run_generator
from fleet_sdk.vars.lock import repository_lock
from fleet_sdk.vars.recovery import recover
from fleet_sdk.vars.scoping import owner_of
from fleet_sdk.vars.selection import Node, select
from fleet_sdk.vars.store import GeneratorId, Staged, VarsStore, generator_id
from fleet_sdk.vars.writes import reason

__all__ = ["GenerateOptions", "GenerateResult", "VarsWriteError", "generate", "public_values", "repository_lock"]

Progress = Callable[[int, int, GeneratorId], None]


@dataclass
class GenerateOptions:
    machines: list[str] | None = None
    generators: list[str] | None = None
    regenerate: bool = False
    sandbox: bool = True
    prompts_file: Path | None = None
    interactive: bool | None = None
    jobs: int | None = None
    identities: list[str] | None = None  # default: the operator's (SOPS_AGE_KEY, key file)


@dataclass
class GenerateResult:
    generated: list[GeneratorId] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def write_error(e: OSError, what: str) -> VarsWriteError:
    """`what` could not be written, why, and what to do; says what the store holds now."""
    return VarsWriteError(
        f"{what}: cannot write {reason(e)}; nothing of it was stored (generators stored before it stay). "
        "Free space or make the repository writable, then run `fleet vars generate` again"
    )


def _inputs(
    store: VarsStore,
    fleet: Fleet,
    node: Node,
    identities: list[str],
    produced: dict[GeneratorId, dict[str, bytes]],
) -> dict[str, dict[str, bytes]]:
    """$in: every file (secret or public) of every dependency, by dependency name; from memory
    when this run generated the dependency, else decrypted from the store."""
    out: dict[str, dict[str, bytes]] = {}
    machine = node.machines[0]
    own = {g.name: g for g in fleet.generators_of(machine)}
    for dep in node.deps:
        generator = own.get(dep.name)
        if generator is None:
            raise GeneratorError(f"generator {node.gid}: its dependency {dep} is not declared by {machine}")
        if dep in produced:
            out[dep.name] = produced[dep]
            continue
        files: dict[str, bytes] = {}
        for f in generator.all_files:
            value = store.read(dep, f, identities)
            if value is None:
                raise GeneratorError(f"generator {node.gid}: input {dep.name}/{f.name} is missing; generate {dep.name}")
            files[f.name] = value
        out[dep.name] = files
    return out


def generate(
    repo: Path,
    fleet: Fleet,
    options: GenerateOptions | None = None,
    progress: Progress | None = None,
    runner: Runner | None = None,
) -> GenerateResult:
    options = options or GenerateOptions()
    runner = LOCAL if runner is None else runner
    store = VarsStore(repo)
    identities = options.identities if options.identities is not None else operator_identities()
    result = GenerateResult()
    with repository_lock(repo, "fleet vars generate"):
        try:
            recover(repo, runner)
        except OSError as e:
            raise write_error(e, "repairing what an interrupted run left") from None
        steps = select(
            fleet,
            lambda n: store.complete(n.gid, n.generator),
            options.machines,
            options.generators,
            options.regenerate,
        )
        try:  # a machine new to a shared generator, or back from disabled, can open its secrets
            result.written += grant_shared(store, fleet, options.machines or fleet.names, identities)
        except OSError as e:
            raise write_error(e, "giving machines access to their shared secrets") from None
        if not steps:
            git.add(runner, repo, result.written)
            return result
        needs_secrets = any(f.secret for n in steps for f in n.generator.all_files)
        admin = store.sops.admin(identities) if needs_secrets or any(n.deps for n in steps) else ""
        file_values = prompt_values.load_file(options.prompts_file)
        answers = {
            n.gid: prompt_values.resolve(
                n.generator,
                file_values,
                functools.partial(_previous, store, n, identities=identities),
                options.regenerate,
                options.interactive,
            )
            for n in steps
        }
        result.written += _machine_keys(store, fleet, steps, identities)
        realise_final_scripts(runner, [n.generator.final_script for n in steps if n.generator.final_script])
        try:
            _run_all(store, fleet, steps, answers, options, identities, admin, result, progress, runner)
        except BaseException:
            # what went in before the failure is tracked too; should this fail as well (the same
            # full disk), the next run or `fleet vars fix` adds it
            with contextlib.suppress(FleetError, OSError):
                git.add(runner, repo, result.written)
            raise
        git.add(runner, repo, result.written)  # flakes see tracked files only; once per run
    return result


def _machine_keys(store: VarsStore, fleet: Fleet, steps: list[Node], identities: list[str]) -> list[Path]:
    """The age key of every machine a secret of `steps` is deployed to, made before any secret is
    encrypted to it (clan.md §3.2); the paths of the keys made."""
    disabled = _disabled(fleet)
    deploy_to = sorted(
        {m for n in steps for f in n.generator.all_files if f.secret and f.deploy for m in _recipients(disabled, n)}
    )
    try:
        keys = store.sops.ensure_machine_keys(deploy_to, identities)
    except OSError as e:
        raise write_error(e, f"the age keys of machines {', '.join(deploy_to)}") from None
    written: list[Path] = []
    for machine, (_, created) in keys.items():
        if created:
            written += [store.sops.member_dir("machines", machine), store.sops.secret_dir(f"{machine}-age.key")]
    return written


def _recipients(disabled: set[str], node: Node) -> list[str]:
    """The machines a generator's deploy secrets are encrypted to: its machine, or for a shared one
    the enabled machines declaring it (vars.scoping: `fix` takes the others off) and, disabled or
    not, the machine whose own identity it holds (`zerotier-identity-<m>`: it comes back with it)."""
    if node.gid.machine is not None:
        return list(node.machines)
    owner = owner_of(Path("vars") / node.gid.rel_dir / "file")
    return [m for m in node.machines if m not in disabled or m == owner]


def _disabled(fleet: Fleet) -> set[str]:
    return set(fleet.names) - fleet.enabled


def _previous(store: VarsStore, node: Node, name: str, *, identities: list[str]) -> str | None:
    files = {f.name: f for f in node.generator.all_files}
    f = files.get(name)
    if f is None:
        return None
    value = store.read(node.gid, f, identities)
    return value.decode() if value is not None else None


def _run_all(
    store: VarsStore,
    fleet: Fleet,
    steps: list[Node],
    answers: dict[GeneratorId, dict[str, str]],
    options: GenerateOptions,
    identities: list[str],
    admin: str,
    result: GenerateResult,
    progress: Progress | None,
    runner: Runner,
) -> None:
    produced: dict[GeneratorId, dict[str, bytes]] = {}  # outputs of this run, the inputs of dependents
    jobs = options.jobs or min(8, (os.cpu_count() or 2) * 2)

    def committed(batch: list[Staged], written: list[Path]) -> None:
        result.written += written  # only the committer thread appends
        result.generated += [s.gid for s in batch]

    committer = Committer(store, committed)
    disabled = _disabled(fleet)

    def work(node: Node) -> None:
        inputs = _inputs(store, fleet, node, identities, produced)
        outputs = run_generator(node.gid, node.generator, inputs, answers[node.gid], options.sandbox, runner=runner)
        # each generator stages only its own folder, so generators of different machines stage in parallel
        try:
            recipients, own = _recipients(disabled, node), node.gid.machine is not None
            staged = store.stage(node.gid, node.generator, outputs, recipients, admin, keep_machines=own)
        except OSError as e:
            raise write_error(e, f"generator {node.gid}") from None
        committer.submit(staged)
        produced[node.gid] = outputs

    try:
        failure = _run_in_order(steps, work, jobs, progress, lambda: committer.error)
    finally:
        commit_error = committer.close()
    for error in (failure, commit_error):  # the committer's error may also be the run's failure
        if isinstance(error, OSError):
            raise write_error(error, "putting generated vars in place") from None
        if error is not None:
            raise error


class _Schedule:
    """The order of a run: a generator is ready once every dependency of it in the run is done."""

    def __init__(self, steps: list[Node]) -> None:
        self.nodes = {n.gid: n for n in steps}
        self._waiting_on = {n.gid: {d for d in n.deps if d in self.nodes} for n in steps}
        self._dependents: dict[GeneratorId, list[GeneratorId]] = {}
        for gid, deps in self._waiting_on.items():
            for dep in deps:
                self._dependents.setdefault(dep, []).append(gid)

    def first(self) -> list[GeneratorId]:
        return sorted((g for g, w in self._waiting_on.items() if not w), key=_order)

    def done(self, gid: GeneratorId) -> list[GeneratorId]:
        """The generators that were waiting on `gid` last."""
        ready = []
        for other in self._dependents.get(gid, ()):
            self._waiting_on[other].discard(gid)
            if not self._waiting_on[other]:
                ready.append(other)
        return ready


def _run_in_order(
    steps: list[Node],
    work: Callable[[Node], None],
    jobs: int,
    progress: Progress | None,
    stopped: Callable[[], BaseException | None],
) -> BaseException | None:
    """`work` on each step once its dependencies are done, `jobs` at a time. The first failure (of a
    step, or what `stopped` returns) starts nothing more; the steps in flight finish. Returns it."""
    schedule = _Schedule(steps)
    running: dict[Future[None], GeneratorId] = {}
    failure: BaseException | None = None
    done_count = 0
    ready = schedule.first()
    with ThreadPoolExecutor(max_workers=jobs) as pool, _interruptible():
        while (ready or running) and failure is None:
            for gid in ready:
                running[pool.submit(work, schedule.nodes[gid])] = gid
            ready = []
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                gid = running.pop(future)
                if (error := future.exception()) is not None:
                    failure = failure or error
                    continue
                done_count += 1
                if progress:
                    progress(done_count, len(steps), gid)
                ready += schedule.done(gid)
            ready.sort(key=_order)
            failure = failure or stopped()
        for future in list(running):  # let the ones in flight finish and be stored
            with contextlib.suppress(BaseException):
                future.result()
    return failure


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C reaches only this process's group, not the generator scripts (each runs in its own):
    kill them, so the pool's threads return instead of waiting out the scripts' timeouts."""
    try:
        yield
    except KeyboardInterrupt:
        kill_running()
        raise


def _order(gid: GeneratorId) -> tuple[str, str]:
    return (gid.machine or "", gid.name)


def public_values(store: VarsStore, fleet: Fleet, machine: str) -> dict[str, str]:
    """`<generator>/<file>` -> value of every public file of the machine's generators that exists."""
    out = {}
    for g in fleet.generators_of(machine):
        gid = generator_id(g, machine)
        for f in g.all_files:
            if not f.secret and (value := store.public(gid, f.name)) is not None:
                out[f"{g.name}/{f.name}"] = value.decode(errors="replace")
    return out
