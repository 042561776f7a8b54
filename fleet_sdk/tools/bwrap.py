"""bubblewrap: run a generator script without network, seeing only /usr and its own temp folder.

As clan's sandbox (reference/clan.md §1.5): all namespaces unshared (no network), a fresh root with
the system's /usr (and /nix/store when present) read-only, /dev, /proc, an empty /tmp, uid 1000, and
the generator's temp folder (which holds $in, $out and $prompts) bound read-write at its own path.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from fleet_sdk.tools.runner import CmdResult, Runner

BWRAP = "bwrap"


def available() -> bool:
    return shutil.which(BWRAP) is not None


def argv(workdir: Path, script: str, env: Mapping[str, str]) -> list[str]:
    args = [
        BWRAP,
        "--unshare-all",
        "--die-with-parent",
        "--clearenv",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/sbin", "/sbin",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",  # noqa: S108 (a fresh tmpfs inside the sandbox)
        "--dir", "/etc",
    ]  # fmt: skip
    for etc in ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf"):
        if Path(etc).exists():
            args += ["--ro-bind", etc, etc]
    if Path("/nix/store").is_dir():
        args += ["--ro-bind", "/nix/store", "/nix/store"]
    args += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir), "--uid", "1000", "--gid", "1000"]
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    return [*args, "--", "/bin/bash", "-c", script]


def run_script(
    runner: Runner,
    workdir: Path,
    script: str,
    env: Mapping[str, str],
    timeout: float | None,
    sandbox: bool,
    hint: str,
) -> CmdResult:
    """Run `script` with bash, sandboxed unless `sandbox` is False (then in `workdir` with `env`)."""
    if sandbox:
        return runner.run(argv(workdir, script, env), timeout=timeout, hint=hint)
    return runner.run(["bash", "-c", script], cwd=workdir, env=dict(env), timeout=timeout, hint=hint)


def tool_dirs(tools: Sequence[str]) -> tuple[list[str], list[str]]:
    """(directories holding the tools, tools not found on PATH)."""
    dirs, missing = [], []
    for tool in tools:
        found = shutil.which(tool)
        if found is None:
            missing.append(tool)
        elif str(Path(found).parent) not in dirs:
            dirs.append(str(Path(found).parent))
    return dirs, missing
