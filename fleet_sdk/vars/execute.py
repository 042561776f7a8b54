"""Running one generator (reference/clan.md §1.5): lay out $in, $prompts and $out in a private
temp folder (in RAM when /dev/shm exists, so plaintexts do not reach a disk), run the script in the
sandbox or call the Python function, then collect exactly the declared files.

A script always runs with a timeout, so the runner starts it in a process group of its own and kills
the whole group when it times out or exits (no background child outlives it). A run killed with
SIGKILL cannot remove its temp folder; the folder's name carries the run's pid, and the next run
removes the folders of runs that are gone (`remove_stale_tmp`).

A generator declared in the flake carries the derivation of clan's `finalScript` (`final_script`):
it is realised (`nix-store --realise`, once per derivation in this process) and its output, a script
that sets its own PATH, copies persisted prompts to $out and runs the user's script, is run as clan
runs it, `bash -c <store path>`, in the same sandbox (which binds /nix/store read-only) with the same
$in, $out and $prompts."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

from fleet_sdk.errors import CommandError, FleetError, GeneratorError
from fleet_sdk.fs import atomic as fsutil
from fleet_sdk.fs import private as privatedir
from fleet_sdk.spec.generators import Generator
from fleet_sdk.tools import bwrap, nix
from fleet_sdk.tools.runner import LOCAL, Runner
from fleet_sdk.vars.store import GeneratorId

PURPOSE = "vars"  # temp folders fleet-vars-<pid>-…, see fleet_sdk.fs.private
SYSTEM_PATH = "/usr/bin:/bin"

_realised: dict[str, str] = {}  # finalScript derivation -> its output, realised by this process
_realising: dict[str, threading.Lock] = {}  # one lock per derivation: realised once, whichever thread asks
_realising_lock = threading.Lock()


def remove_stale_tmp() -> list[Path]:
    """Temp folders of runs that were killed (their pid is gone): they may hold plaintexts."""
    return privatedir.remove_stale(PURPOSE)


def run_generator(
    gid: GeneratorId,
    g: Generator,
    inputs: dict[str, dict[str, bytes]],
    prompts: dict[str, str],
    sandbox: bool = True,
    timeout: float = 600,
    runner: Runner | None = None,
) -> dict[str, bytes]:
    """The generator's files by name. Raises GeneratorError naming the generator and what to do."""
    runner = LOCAL if runner is None else runner
    tmp = privatedir.new(PURPOSE)
    try:
        if g.python is not None:
            # Python generators get their inputs and prompts in memory: only $out is a folder
            _run_python(gid, g, inputs, prompts, tmp)
            return _collect(gid, g, tmp)
        in_dir, out_dir, prompt_dir = tmp / "in", tmp / "out", tmp / "prompts"
        for d in (in_dir, out_dir, prompt_dir):
            d.mkdir(mode=0o700)
        for dep, files in inputs.items():
            for name, data in files.items():
                fsutil.write_new(in_dir / dep / name, data)
        for name, value in prompts.items():
            fsutil.write_new(prompt_dir / name, value.encode())
        for p in g.prompts:
            # clan copies persisted prompts to $out before the script runs (a finalScript does it itself)
            if p.persist and g.final_script is None:
                fsutil.write_new(out_dir / p.name, prompts[p.name].encode())
        _run_script(runner, gid, g, tmp, in_dir, out_dir, prompt_dir, sandbox, timeout)
        return _collect(gid, g, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_python(
    gid: GeneratorId, g: Generator, inputs: dict[str, dict[str, bytes]], prompts: dict[str, str], out: Path
) -> None:
    assert g.python is not None
    for p in g.prompts:
        if p.persist:
            fsutil.write_new(out / p.name, prompts[p.name].encode())
    try:
        g.python(inputs, prompts, out)
    except FleetError:
        raise
    except Exception as e:
        raise GeneratorError(f"generator {gid}: {type(e).__name__}: {e}") from e


def _run_script(
    runner: Runner,
    gid: GeneratorId,
    g: Generator,
    tmp: Path,
    in_dir: Path,
    out_dir: Path,
    prompt_dir: Path,
    sandbox: bool,
    timeout: float,
) -> None:
    dirs, missing = bwrap.tool_dirs(g.runtime_inputs)
    if missing:
        raise GeneratorError(f"generator {gid}: runtime inputs not found on PATH: {', '.join(missing)}; install them")
    if sandbox and not bwrap.available():
        raise GeneratorError(
            f"generator {gid}: bubblewrap (bwrap) is not installed, so the script cannot run sandboxed; "
            "install bubblewrap or pass --no-sandbox"
        )
    env = {
        "in": str(in_dir),
        "out": str(out_dir),
        "prompts": str(prompt_dir),
        "PATH": ":".join([*dirs, SYSTEM_PATH]),
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
    }
    if g.final_script is not None:
        script = realised_final_script(runner, gid, g.final_script)  # bash -c <store path>, as clan runs it
    else:
        script = "set -euo pipefail\n" + (g.script or "")
    try:
        bwrap.run_script(runner, tmp, script, env, timeout, sandbox, hint="")
    except CommandError as e:
        status = "timed out" if e.returncode is None else f"failed with exit code {e.returncode}"
        tail = "\n".join(e.stderr.strip().splitlines()[-15:])
        raise GeneratorError(
            f"generator {gid}: its {'finalScript' if g.final_script else 'script'} {status}; nothing of it was stored"
            + (f"\n{tail}" if tail else "")
        ) from None


def realise_final_scripts(runner: Runner, drvs: Sequence[str]) -> None:
    """Realise the finalScripts a run needs in one nix process before any generator runs (a process
    per derivation costs ~20 ms each). A failure here is left to `realised_final_script`, which
    realises that generator's alone and names it."""
    wanted = sorted({d for d in drvs if not (d in _realised and Path(_realised[d]).exists())})
    try:
        found = nix.realise_all(runner, wanted)
    except FleetError:
        return
    with _realising_lock:
        _realised.update(found)


def realised_final_script(runner: Runner, gid: GeneratorId, drv: str) -> str:
    """The store path of the finalScript derivation `drv`, realised once per process (a path since
    collected is realised again). Raises GeneratorError with the tail of Nix's message."""
    with _realising_lock:
        lock = _realising.setdefault(drv, threading.Lock())
    with lock:
        found = _realised.get(drv)
        if found is not None and Path(found).exists():
            return found
        try:
            found = nix.realise(runner, drv)
        except CommandError as e:
            status = "timed out" if e.returncode is None else "failed"
            gone = (
                ""
                if Path(drv).exists()
                else " (the derivation is not in this machine's Nix store: evaluate the flake here)"
            )
            raise GeneratorError(
                f"generator {gid}: building its finalScript {drv} {status}{gone}; nothing of it was stored; "
                "fix the generator in the flake\n" + nix.build_error_tail(e.stderr)
            ) from None
        except FleetError as e:
            raise GeneratorError(f"generator {gid}: {e}") from None
        _realised[drv] = found
        return found


def _collect(gid: GeneratorId, g: Generator, out_dir: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for f in g.all_files:
        path = out_dir / f.name
        if not path.is_file() or path.is_symlink():
            produced = sorted(p.name for p in out_dir.iterdir()) or ["nothing"]
            raise GeneratorError(
                f"generator {gid} did not generate a file for {f.name!r} (it produced: {', '.join(produced)})"
            )
        data = path.read_bytes()
        if f.secret and not data:
            raise GeneratorError(f"generator {gid} produced an empty secret {f.name!r}; secrets must not be empty")
        files[f.name] = data
    # clan ignores what a script writes beyond its files; a stray file is a script and a declaration
    # that disagree (a renamed file, a typo), so nothing is stored until they agree
    if stray := sorted(p.name for p in out_dir.iterdir() if p.name not in files):
        raise GeneratorError(
            f"generator {gid} wrote files it does not declare: {', '.join(stray)}; nothing of it was stored. "
            "Declare them in its files, or stop writing them"
        )
    return files
