"""Where a flake's source is on this machine, and its fingerprint: what the closure probe keys its
cache on (fleet_sdk.deploy.probe).

A flake reference is local when it is a path (`/srv/fleet`, `./fleet`), `path:<dir>` or
`git+file://<dir>`, with no parameter but `dir`; anything else (`github:…`, `git+https:…`, a registry
name) is fetched by Nix and not probed. The source is what Nix copies into the store:

- a git work tree (`git+file:`, or a bare path in one: Nix walks up to the first `.git`, as here):
  the **tracked** files only. Untracked files, ignored or not, are invisible to Nix, so they are not
  in the fingerprint either. The fingerprint is the sha256 of: `git ls-files --stage` (the index:
  mode, blob id and path of every tracked file) tagged with `-m -d` (tracked files whose working-tree
  content differs from the index: git compares content, not only stat data), the working-tree content
  of each of those (or its absence), the HEAD commit (Nix's `self.rev`, `lastModified` and the
  dirty state follow from it), flake.lock's content, and the reference itself. Two `git` processes;
  the cache lives in the repository: `<git common dir>/fleet/closures/`.
- a `path:` flake, or a bare path outside any work tree: **every** file under the folder, so the
  fingerprint hashes each one's path, kind (file, executable, link, folder) and content, plus the
  newest modification time (Nix's `lastModified` of a path flake). No process; the cache lives in
  `$XDG_CACHE_HOME/fleet/closures/` (default `~/.cache`).

Not in the fingerprint: the Nix version and nix.conf, and inputs flake.lock does not lock (Nix resolves
those anew at each evaluation): lock them (`nix flake lock`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode

from fleet_sdk.errors import CommandError
from fleet_sdk.tools.runner import Runner

Kind = Literal["git", "path"]
VERSION = b"fleet closure fingerprint 1\n"  # a change of what goes in starts a new cache


@dataclass(frozen=True)
class FlakeSource:
    """A flake on this machine: `ref` (absolute, for Nix), its folder (holding flake.nix) and `kind`."""

    ref: str
    directory: Path
    kind: Kind


@dataclass(frozen=True)
class Fingerprint:
    """The source fingerprint of a flake, and where its probe cache lives."""

    digest: str
    cache_dir: Path


def locate(flake: str, base: Path | None = None) -> FlakeSource | str:
    """The local source of the flake reference `flake` (a relative path is taken from `base`, by default
    the current folder), or why there is none here."""
    ref, _, fragment = flake.partition("#")
    if fragment:
        return f"the flake reference {flake} names an attribute; give the flake alone"
    if ref.startswith(("/", ".")):  # as for nix, a path starts with one of these; `nixpkgs` is a registry name
        scheme, rest = "", ref
    else:
        scheme, _, rest = ref.partition(":")
        if scheme not in ("path", "git+file"):
            return f"the flake {flake} is not on this machine (only a path, path: or git+file: flake is evaluated here)"
        rest = rest.removeprefix("//") if scheme == "git+file" else rest
    location, _, query = rest.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    if other := sorted(set(params) - {"dir"}):
        return f"the flake {flake} has parameters ({', '.join(other)}) the probe does not follow (it reads folders)"
    root = (base or Path.cwd()) / (unquote(location) if scheme else location)
    directory = Path(os.path.normpath(root / params.get("dir", "")))
    if not (directory / "flake.nix").is_file():
        return f"no flake.nix in {directory}"
    kind: Kind = "git" if scheme == "git+file" or (not scheme and _in_work_tree(directory)) else "path"
    prefix = {"": "", "path": "path:", "git+file": "git+file://"}[scheme]
    normal = prefix + os.path.normpath(root) + (f"?{urlencode(params)}" if params else "")
    return FlakeSource(normal, directory, kind)


def _in_work_tree(directory: Path) -> bool:
    """Whether Nix takes a bare path as a git flake: a `.git` in it or a folder above."""
    return any((p / ".git").exists() for p in (directory, *directory.parents))


def fingerprint(
    runner: Runner, source: FlakeSource, cache_home: Path | None = None, skip: Sequence[str] = ()
) -> Fingerprint | str:
    """The fingerprint of `source` (module doc), or why it cannot be taken (git missing or failing).
    `skip`: folders of the flake (relative to its directory) left out, for a cache whose result
    cannot depend on them (the vars generators' declarations do not read vars/ or sops/)."""
    digest = hashlib.sha256(VERSION + source.ref.encode() + b"\0" + "\0".join(skip).encode())
    lock = source.directory / "flake.lock"
    digest.update(b"flake.lock\0" + _content(lock) + b"\0")
    if source.kind == "path":
        root = _path_root(source)
        _hash_folder(digest, root, tuple(str((source.directory / f).relative_to(root)) for f in skip))
        cache = cache_home or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return Fingerprint(digest.hexdigest()[:32], cache / "fleet" / "closures")
    try:
        common_dir = _hash_work_tree(runner, digest, source.directory, skip)
    except CommandError as e:
        if e.returncode == 127:
            return f"git is not installed, which Nix needs to read the flake's work tree {source.directory}"
        return f"git cannot read the work tree of {source.directory}: {e}"
    return Fingerprint(digest.hexdigest()[:32], common_dir / "fleet" / "closures")


def _path_root(source: FlakeSource) -> Path:
    """The folder Nix copies for a path flake: the reference's path (its `dir` is a folder under it)."""
    location = source.ref.removeprefix("path:").partition("?")[0]
    return Path(location)


def _hash_work_tree(runner: Runner, digest: hashlib._Hash, directory: Path, skip: Sequence[str] = ()) -> Path:
    """Adds HEAD, the index and the changed tracked files of the work tree holding `directory`
    (but those in its folders `skip`); returns its git common dir (shared by its worktrees)."""
    done = runner.run(
        ["git", "-C", directory, "rev-parse", "--show-toplevel", "--path-format=absolute", "--git-common-dir",
         "--revs-only", "HEAD"],
    )  # fmt: skip
    lines = done.stdout.decode().splitlines()
    top, common_dir = Path(lines[0]), Path(lines[1])
    head = lines[2] if len(lines) > 2 else "unborn"
    digest.update(f"HEAD {head}\0".encode())
    listing = runner.run(["git", "-C", top, "ls-files", "-z", "--stage", "-t", "--modified", "--deleted"]).stdout
    if skip:
        prefixes = tuple(os.fsencode(f"{os.path.relpath(directory / f, top)}/") for f in skip)
        listing = b"\0".join(e for e in listing.split(b"\0") if not e.partition(b"\t")[2].startswith(prefixes))
    digest.update(listing)
    for entry in listing.split(b"\0"):
        tag, _, rest = entry.partition(b" ")
        if tag in (b"C", b"R"):  # changed or removed in the working tree: what Nix reads is the file
            path = top / os.fsdecode(rest.partition(b"\t")[2])
            digest.update(b"\0" + rest + b"\0" + _content(path))
    return common_dir


def _content(path: Path) -> bytes:
    """What Nix copies of one path: a link's target, a file's bytes (its executable bit too), a
    folder's kind only (a submodule's own files are not this repository's), or nothing."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return b"absent"
    if stat.S_ISLNK(st.st_mode):
        return b"link " + os.fsencode(os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return b"folder"
    executable = b"x" if st.st_mode & stat.S_IXUSR else b"-"
    return executable + hashlib.sha256(path.read_bytes()).digest()


def _hash_folder(digest: hashlib._Hash, root: Path, skip: Sequence[str] = ()) -> None:
    """Adds every path under `root` (sorted, links not followed; not the folders `skip`, relative to
    `root`) and the newest modification time."""
    newest = int(root.lstat().st_mtime)
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if str((here / d).relative_to(root)) not in skip)
        for name in sorted([*dirs, *files]):
            path = here / name
            newest = max(newest, int(path.lstat().st_mtime))
            relative = os.fsencode(path.relative_to(root))
            digest.update(relative + b"\0" + _content(path) + b"\0")
    digest.update(f"mtime {newest}\0".encode())
