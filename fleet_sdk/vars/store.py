"""The vars store: vars/ of the fleet repository in clan's layout (reference/clan.md §2).

    vars/per-machine/<m>/<gen>/<file>/value | secret (+ member links)
    vars/shared/<gen>/<file>/…
    vars/<rel_dir>/.validation-hash

A generator's whole folder is replaced in one step: the new folder is built beside the old one (same
depth, so relative member links stay right) and swapped in with renameat2(RENAME_EXCHANGE), so a
reader or a crash sees the old or the new generator, never a mix.

Every path is checked to be exactly one generator's folder (`shared/<name>` or
`per-machine/<machine>/<name>`, each a single name not starting with '.') before anything is read,
written or swapped: a '..' or a '/' in a name must never make a swap replace another folder, and a
leading '.' is reserved for the store's own staging folders and `.validation-hash`.

Secret files are read, written and linked through a `SecretBackend`, by default the repository's
sops tree (clan's sops/ folder); the store itself only lays out folders and swaps them in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from typing_extensions import override

from fleet_sdk.errors import DamagedStoreError, StoreLayoutError
from fleet_sdk.fs import atomic as fsutil
from fleet_sdk.sops.document import encrypt
from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.spec.generators import Generator, GeneratorFile

VALIDATION_HASH = ".validation-hash"


@dataclass(frozen=True)
class GeneratorId:
    """A generator where it lives: per machine, or shared (machine None)."""

    name: str
    machine: str | None

    @property
    def rel_dir(self) -> str:
        return f"shared/{self.name}" if self.machine is None else f"per-machine/{self.machine}/{self.name}"

    @override
    def __str__(self) -> str:
        return f"{self.name} (shared)" if self.machine is None else f"{self.name} (machine {self.machine})"


def generator_id(g: Generator, machine: str) -> GeneratorId:
    return GeneratorId(g.name, None if g.share else machine)


def _plain(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(".")


def _refuse(path: str, what: str) -> StoreLayoutError:
    return StoreLayoutError(
        f"internal error: refusing {path}: {what} must be a single name without '/' that does not start "
        "with '.'; nothing was written. Please report this as a bug of fleet_sdk"
    )


def _stored(repo: Path, path: Path) -> bool:
    """Whether a regular file is at `path`; False when nothing is; DamagedStoreError otherwise."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not os.path.lexists(path):
            return False
        what = "is a link that points nowhere"
    except NotADirectoryError:
        what = "cannot exist: a file stands where one of its folders should be"
    except OSError as e:  # ELOOP, EACCES, EIO …
        what = f"cannot be read ({e.strerror})"
    else:
        if stat.S_ISREG(st.st_mode):
            return True
        what = "is not a file"
    rel = os.path.relpath(path, repo)
    raise DamagedStoreError(f"{rel} {what}; restore it from git (`git checkout -- {rel}`) or remove it")


class SecretBackend(Protocol):
    """What the store needs for its secret files (`<file>/secret` plus member links), as SopsTree
    provides it: who may read a secret is decided by its member links, documents are sops."""

    @property
    def root(self) -> Path:
        """The folder member links point into (sops/: links are relative, <root>/<kind>/<name>)."""
        ...

    def members(self, secret_dir: Path) -> dict[str, list[str]]:
        """A secret's member links by kind (machines, users, groups)."""
        ...

    def keys_of_members(self, members: Mapping[str, Iterable[str]]) -> set[str]:
        """The age recipients of those members."""
        ...

    def read_secret(self, secret_dir: Path, identities: list[str]) -> bytes:
        """The plaintext of secret_dir/secret, opened with one of `identities`."""
        ...

    def write_secret(self, secret_dir: Path, plaintext: bytes, members: Mapping[str, Iterable[str]]) -> None:
        """secret_dir/secret encrypted to its current members plus `members`, then linked to them."""
        ...


class VarsStore:
    def __init__(self, repo: Path, secrets: SecretBackend | None = None) -> None:
        self.repo = repo
        self.root = repo / "vars"
        # the engines that manage keys and members (generate, fix) use the sops tree itself
        self.sops = SopsTree(repo)
        self.secrets: SecretBackend = self.sops if secrets is None else secrets

    def dir(self, gid: GeneratorId) -> Path:
        """The generator's folder; a StoreLayoutError if the id does not name exactly one."""
        if not (_plain(gid.name) and (gid.machine is None or _plain(gid.machine))):
            raise _refuse(
                f"vars/{gid.rel_dir}", "a generator's folder is shared/<name> or per-machine/<machine>/<name>; each"
            )
        return self.root / gid.rel_dir

    def file_dir(self, gid: GeneratorId, file: str) -> Path:
        if not _plain(file):
            raise _refuse(f"vars/{gid.rel_dir}/{file}", "a file's name")
        return self.dir(gid) / file

    def exists(self, gid: GeneratorId, f: GeneratorFile) -> bool:
        return _stored(self.repo, self.file_dir(gid, f.name) / ("secret" if f.secret else "value"))

    def validation_ok(self, gid: GeneratorId, g: Generator) -> bool:
        path = self.dir(gid) / VALIDATION_HASH
        stored = path.read_text() if _stored(self.repo, path) else None
        return stored == g.validation_hash

    def complete(self, gid: GeneratorId, g: Generator) -> bool:
        """clan's `exists`: every declared file stored and the validation hash current (§4.1)."""
        return all(self.exists(gid, f) for f in g.all_files) and self.validation_ok(gid, g)

    def public(self, gid: GeneratorId, file: str) -> bytes | None:
        path = self.file_dir(gid, file) / "value"
        return path.read_bytes() if _stored(self.repo, path) else None

    def secret(self, gid: GeneratorId, file: str, identities: list[str]) -> bytes:
        return self.secrets.read_secret(self.file_dir(gid, file), identities)

    def read(self, gid: GeneratorId, f: GeneratorFile, identities: list[str]) -> bytes | None:
        if not self.exists(gid, f):
            return None
        return self.secret(gid, f.name, identities) if f.secret else self.public(gid, f.name)

    # -- writing -------------------------------------------------------------------------------

    def stage(
        self,
        gid: GeneratorId,
        g: Generator,
        outputs: dict[str, bytes],
        machines: list[str],
        admin: str,
        keep_machines: bool = True,
    ) -> Staged:
        """Build a generator's new folder beside its live one, where no reader looks; `commit` puts
        it in place. Secrets are encrypted to `machines` (deploy files) and the admin user; member
        links that the old files had are kept (clan does not wipe them on regenerate), but for
        machines only with `keep_machines` (a shared generator's new value reaches exactly the
        machines that declare it now: one that left never reads it)."""
        final = self.dir(gid)
        fsutil.ensure_dir(final.parent, 0o755)
        staging = tempfile.mkdtemp(dir=final.parent, prefix=f".{gid.name}.new-")
        # os calls on strings: the folder is new and empty, so nothing needs looking up first
        regenerating = os.path.isdir(final)
        up = os.path.relpath(self.secrets.root, os.path.join(final, "file", "kind"))  # member links' prefix
        try:
            for f in g.all_files:
                target = os.path.join(staging, f.name)
                if not f.secret:
                    os.mkdir(target, 0o755)
                    fsutil.create(os.path.join(target, "value"), outputs[f.name], 0o644)
                    continue
                os.mkdir(target, 0o700)
                links = {("users", admin): f"{up}/users/{admin}"}
                links.update({("machines", m): f"{up}/machines/{m}" for m in (machines if f.deploy else [])})
                if regenerating:  # links the old file had stay, as clan keeps them (machines only if deployed)
                    old = _links(self.secrets, final / f.name)
                    links.update({k: v for k, v in old.items() if k[0] != "machines" or (f.deploy and keep_machines)})
                members: dict[str, list[str]] = {}
                for kind, name in links:
                    members.setdefault(kind, []).append(name)
                document = encrypt(outputs[f.name], sorted(self.secrets.keys_of_members(members)))
                fsutil.create(os.path.join(target, "secret"), document.encode(), 0o600)  # before any link
                for kind in members:
                    os.mkdir(os.path.join(target, kind), 0o700)
                for (kind, name), link in sorted(links.items()):
                    os.symlink(link, os.path.join(target, kind, name))
            if g.validation_hash is not None:
                fsutil.create(os.path.join(staging, VALIDATION_HASH), g.validation_hash.encode(), 0o644)
            os.chmod(staging, 0o755)  # noqa: S103 (public values are readable; secret folders stay 0700)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Staged(gid, Path(staging), final)

    def commit(self, batch: list[Staged]) -> list[Path]:
        """Put staged generators in place, each in one step, in the order given (dependencies
        before their dependents); returns their folders. One syncfs puts the batch's files on disk
        before any of them goes live; it also makes the previous batch's swaps durable, so after
        the last batch call `fsutil.sync_filesystem` on what it returned. If one swap fails, the
        rest of the batch is discarded and the error raised. A batch holding anything but folders
        `stage` made is refused whole, before anything is touched."""
        if not batch:
            return []
        for staged in batch:
            self._check_staged(staged)
        done: list[Path] = []
        try:
            fsutil.sync_filesystem([staged.staging for staged in batch])
            for staged in batch:
                if _swap_in(staged.staging, staged.final):  # the old folder is now at staging
                    shutil.rmtree(staged.staging, ignore_errors=True)
                done.append(staged.final)
        finally:
            for staged in batch[len(done) :]:
                discard(staged)
        return done

    def _check_staged(self, staged: Staged) -> None:
        """A swap exchanges exactly the generator's folder with a staging folder `stage` made beside it."""
        final = self.dir(staged.gid)
        if staged.final != final or staged.staging.parent != final.parent:
            raise _refuse(str(staged.final), "a staged generator's folder and its staging folder's parent")
        if not staged.staging.name.startswith(f".{staged.gid.name}.new-"):
            raise _refuse(str(staged.staging), "a staging folder")

    def set_file(self, gid: GeneratorId, f: GeneratorFile, value: bytes, machines: list[str], admin: str) -> Path:
        """Replace one file (`fleet vars set`); the validation hash is left alone, as clan does."""
        folder = self.file_dir(gid, f.name)
        if f.secret:
            (folder / "value").unlink(missing_ok=True)
            members = {"users": [admin], "machines": machines if f.deploy else []}
            self.secrets.write_secret(folder, value, members)
        else:
            (folder / "secret").unlink(missing_ok=True)
            fsutil.write_atomic(folder / "value", value, 0o644, dir_mode=0o755)
        return folder


@dataclass(frozen=True)
class Staged:
    """A generator's new folder, complete but not yet live (see VarsStore.stage)."""

    gid: GeneratorId
    staging: Path
    final: Path


def discard(staged: Staged) -> None:
    """Remove a staging folder, never anything else (a Staged may have been built by hand)."""
    if staged.staging.name.startswith(f".{staged.gid.name}.new-"):
        shutil.rmtree(staged.staging, ignore_errors=True)


def _links(tree: SecretBackend, secret_dir: Path) -> dict[tuple[str, str], str]:
    """(kind, name) -> link text of a secret's member links; a broken one is an error (members)."""
    members = tree.members(secret_dir) if secret_dir.is_dir() else {}
    return {(kind, name): os.readlink(secret_dir / kind / name) for kind, names in members.items() for name in names}


_RENAME_EXCHANGE = 2
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}  # the kernel or filesystem cannot exchange
_AT_FDCWD = -100
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _swap_in(staging: Path, final: Path) -> bool:
    """Make `staging` the generator folder in one step. True when an old folder was exchanged and
    now sits at `staging`; False when there was none (nothing is left to remove, and no folder is
    made only to be deleted: on ext4 without a journal, recently freed inodes slow every later
    file creation in their group)."""
    if not final.exists():
        os.rename(staging, final)
        return False
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is not None:
        result = renameat2(_AT_FDCWD, bytes(staging), _AT_FDCWD, bytes(final), _RENAME_EXCHANGE)
        if result == 0:
            return True
        err = ctypes.get_errno()
        if err not in _NO_EXCHANGE:  # a real failure (space, permissions …), not a missing feature
            raise OSError(err, os.strerror(err), str(final))
    # no atomic exchange here (old kernel or libc, or a filesystem without it): three renames, and
    # the old folder put back if the new one cannot go in, so the generator is never missing
    backup = staging.with_name(staging.name + ".old")
    os.rename(final, backup)
    try:
        os.rename(staging, final)
    except OSError:
        os.rename(backup, final)
        raise
    os.rename(backup, staging)
    return True
