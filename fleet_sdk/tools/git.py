"""git, for the files fleet_sdk writes into the fleet repository: flakes only see tracked files.

`add` gives the index what `git add <paths>` would, faster for the thousands of small files a vars
run writes: `git add` stores each as a loose object (a file, and on many filesystems an inode
allocation and a sync each), while `git fast-import` puts them all in one pack and
`git update-index --index-info` records them in one write. When the repository converts files on
the way in (autocrlf, or text/eol/filter/ident/encoding attributes on these paths), the blob would
differ from the file (or, with core.filemode false, the mode), so plain `git add` runs instead.
Either way files a .gitignore matches are added too (`git add --force`): a flake that cannot see a
var cannot deploy it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from fleet_sdk.errors import CommandError
from fleet_sdk.tools.runner import Runner

# attributes under which git stores something other than the file's bytes
_CONVERTING = ("text", "eol", "crlf", "filter", "ident", "working-tree-encoding")


def _work_tree(runner: Runner, repo: Path) -> tuple[Path, str] | None:
    """(top folder, sha1 or sha256) of the work tree holding `repo`; None when it is in none."""
    done = runner.run(
        ["git", "-C", repo, "rev-parse", "--is-inside-work-tree", "--show-toplevel", "--show-object-format"],
        check=False,
    )
    lines = done.stdout.decode().splitlines()
    if done.returncode != 0 or len(lines) != 3 or lines[0] != "true":
        return None
    return Path(lines[1]), lines[2]


def add(runner: Runner, repo: Path, paths: Sequence[Path]) -> bool:
    """Track `paths` (files, or folders with all they hold) as `git add` would: new and changed
    files staged, entries of files gone from those folders dropped. Nothing to do when `repo` is
    not in a git work tree. True if added."""
    found = _work_tree(runner, repo) if paths else None
    if found is None:
        return False
    top, algorithm = found  # index paths are from the top, and `repo` may be a folder below it
    specs = _relative(repo, top, paths)
    files = dict(_tracked_files(top, specs))
    if not files or _converts(runner, top, list(files)):
        _git_add(runner, top, specs)
        return True
    _import_blobs(runner, top, [data for _, data in files.values()])
    entries = [f"{mode:o} {_blob_id(algorithm, data)}\t{path}".encode() for path, (mode, data) in sorted(files.items())]
    gone = set(_indexed(runner, top, specs)) - set(files)
    zero = "0" * len(_blob_id(algorithm, b""))
    entries += [f"0 {zero}\t{path}".encode() for path in sorted(gone)]  # mode 0 drops the entry
    runner.run(["git", "-C", top, "update-index", "-z", "--index-info"], input=b"\0".join(entries) + b"\0")
    return True


def untracked(runner: Runner, repo: Path, paths: Sequence[str]) -> list[Path]:
    """Files and symlinks at or under `paths` (relative to `repo`) that the index does not hold,
    ignored ones included (`add` would track them). None when `repo` is in no work tree or git is
    not installed: then nothing can be tracked."""
    try:
        if _work_tree(runner, repo) is None:
            return []
    except CommandError as e:
        if e.returncode == 127:
            return []
        raise
    out = runner.run(["git", "--literal-pathspecs", "-C", repo, "ls-files", "-z", "--others", "--", *paths]).stdout
    return [repo / os.fsdecode(p) for p in out.split(b"\0") if p]


def stale_index_lock(runner: Runner, repo: Path, settle: float = 0.0) -> Path | None:
    """The index.lock of `repo`'s git directory when a killed git command left it (every later `add`
    would fail on it): it exists and no process has it open, also after `settle` seconds (git closes
    the file just before renaming it into place). Judged on Linux only (/proc); elsewhere None."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return None
    try:
        done = runner.run(["git", "-C", repo, "rev-parse", "--absolute-git-dir"], check=False)
    except CommandError:  # git is not installed: nothing of ours can have left the lock
        return None
    if done.returncode != 0:
        return None
    lock = Path(done.stdout.decode().strip()) / "index.lock"
    try:
        inode = lock.stat().st_ino
    except FileNotFoundError:
        return None
    if _held_open(lock):
        return None
    if settle:
        time.sleep(settle)
        try:
            if lock.stat().st_ino != inode or _held_open(lock):
                return None
        except FileNotFoundError:
            return None
    return lock


def _held_open(path: Path) -> bool:
    target = os.path.realpath(path)  # /proc shows the resolved path
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            try:
                if os.readlink(fd_dir / fd) == target:
                    return True
            except OSError:
                continue
    return False


def _relative(repo: Path, top: Path, paths: Sequence[Path]) -> list[str]:
    """Paths relative to the work tree's top; each resolved (a stat per component) only when it is
    not plainly under `repo`."""
    prefix = os.path.relpath(repo.resolve(), top)
    specs = set()
    for p in paths:
        try:
            specs.add(os.path.normpath(os.path.join(prefix, p.relative_to(repo))))
        except ValueError:
            specs.add(os.path.relpath(p.resolve(), top))
    return sorted(specs)


def _git_add(runner: Runner, repo: Path, specs: list[str]) -> None:
    # on stdin, NUL-separated: hundreds of pathspecs as arguments cost git four times as much
    runner.run(
        ["git", "--literal-pathspecs", "-C", repo, "add", "--force", "--pathspec-from-file=-", "--pathspec-file-nul"],
        input=b"\0".join(s.encode() for s in specs),
    )


def _tracked_files(root: Path, specs: list[str]) -> Iterator[tuple[str, tuple[int, bytes]]]:
    """(path, (git mode, blob bytes)) of every file and symlink at or under each spec."""
    for spec in specs:
        full = os.path.join(root, spec)
        if os.path.isdir(full) and not os.path.islink(full):
            for dirpath, dirs, names in os.walk(full):
                rel = os.path.relpath(dirpath, root)
                for name in [*names, *(d for d in dirs if os.path.islink(os.path.join(dirpath, d)))]:
                    entry = _entry(os.path.join(dirpath, name))
                    if entry is not None:
                        yield (os.path.join(rel, name), entry)
        elif (entry := _entry(full)) is not None:
            yield (spec, entry)


def _entry(path: str) -> tuple[int, bytes] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return 0o120000, os.readlink(path).encode()
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            return (0o100755 if st.st_mode & stat.S_IXUSR else 0o100644), f.read()
    return None


def _converts(runner: Runner, repo: Path, paths: list[str]) -> bool:
    """Whether `git add` would store something other than the files' bytes and modes."""
    config = runner.run(["git", "-C", repo, "config", "--get-regexp", r"^core\.(autocrlf|filemode)$"], check=False)
    settings = dict(line.split(" ", 1) for line in config.stdout.decode().lower().splitlines() if " " in line)
    if settings.get("core.autocrlf") in ("true", "input") or settings.get("core.filemode") == "false":
        return True
    out = runner.run(
        ["git", "-C", repo, "check-attr", "-z", "--stdin", *_CONVERTING], input=b"\0".join(p.encode() for p in paths)
    ).stdout.split(b"\0")
    return any(value != b"unspecified" for value in out[2::3])  # path, attribute, value, ...


def _blob_id(algorithm: str, data: bytes) -> str:
    return hashlib.new(algorithm, b"blob %d\0" % len(data) + data).hexdigest()


def _import_blobs(runner: Runner, repo: Path, blobs: list[bytes]) -> None:
    stream = b"".join(b"blob\ndata %d\n%b\n" % (len(data), data) for data in blobs) + b"done\n"
    runner.run(["git", "-C", repo, "fast-import", "--quiet", "--done"], input=stream)


def _indexed(runner: Runner, repo: Path, specs: list[str]) -> list[str]:
    """Index entries at or under the specs (ls-files of their top folders, filtered here: this git
    may not read pathspecs from stdin, and hundreds of them on the command line are slow)."""
    tops = sorted({spec.split("/", 1)[0] for spec in specs})
    out = runner.run(["git", "--literal-pathspecs", "-C", repo, "ls-files", "-z", "--cached", "--", *tops]).stdout
    wanted = set(specs)
    paths = (p.decode() for p in out.split(b"\0") if p)
    return [p for p in paths if any("/".join(p.split("/")[:i]) in wanted for i in range(1, p.count("/") + 2))]
