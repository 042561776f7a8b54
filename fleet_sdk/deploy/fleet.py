"""Deploy several machines at once: a pool of `jobs` threads, each machine on its own; one machine's
failure never stops the others (reference/deploy.md §7.5). Results come back in request order. The
settings are one for all, or per machine (a machine the mapping leaves out gets the defaults)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from fleet_sdk.deploy.engine import Progress, deploy_machine
from fleet_sdk.deploy.model import DeployRequest, DeployResult
from fleet_sdk.deploy.settings import DeploySettings
from fleet_sdk.errors import DeployError
from fleet_sdk.tools.runner import LOCAL, Runner


def deploy_machines(
    requests: Sequence[DeployRequest],
    settings: DeploySettings | Mapping[str, DeploySettings] | None = None,
    runner: Runner = LOCAL,
    jobs: int = 4,
    progress: Progress | None = None,
) -> list[DeployResult]:
    names = [r.machine for r in requests]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise DeployError(twice[0], "requested twice in one deploy; name each machine once")
    if not requests:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(requests))), thread_name_prefix="deploy") as pool:
        futures = [pool.submit(deploy_machine, r, _of(settings, r.machine), runner, progress) for r in requests]
        return [f.result() for f in futures]


def _of(settings: DeploySettings | Mapping[str, DeploySettings] | None, machine: str) -> DeploySettings | None:
    return settings.get(machine) if isinstance(settings, Mapping) else settings
