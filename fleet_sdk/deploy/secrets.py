"""The secrets a deploy uploads (the machine's age key at /var/lib/sops-nix/key.txt, neededFor=activation
files under activation/): checked, digested, and packed into a tar archive in memory with their owners,
groups and modes set inside it (clan's upload, reference/deploy.md §2). The archive travels on ssh's
stdin: no secret is ever a process argument, a log line, or a file on this machine.

The digest marker `.fleet-digest` goes inside the archive, so it changes in the same rename as the
files: a deploy whose closure and digest are both current does nothing. It holds a SHA-256 over the
paths, owners, modes and the SHA-256 of each file, never the bytes.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from collections.abc import Mapping
from pathlib import PurePosixPath

from fleet_sdk.deploy.model import SecretFile
from fleet_sdk.errors import DeployError

MARKER = ".fleet-digest"


def check_paths(machine: str, secrets: Mapping[str, SecretFile], root: str) -> None:
    """Each path must be a file below `root` (the whole folder is replaced), without `..`."""
    for path, secret in secrets.items():
        p = PurePosixPath(path)
        inside = p.is_absolute() and p.parts[: len(PurePosixPath(root).parts)] == PurePosixPath(root).parts
        if not inside or p == PurePosixPath(root) or ".." in p.parts or str(p) != path or p.name == MARKER:
            raise DeployError(
                machine,
                f"secret path {path!r} is not a file below {root}: the upload replaces {root} as a whole, "
                "so every secret must be below it (a normalised absolute path)",
            )
        if not 0 <= secret.mode <= 0o7777:
            raise DeployError(machine, f"secret {path}: mode {secret.mode:o} is not a file mode")


def digest(secrets: Mapping[str, SecretFile]) -> str:
    h = hashlib.sha256(b"fleet-secrets-v1\0")
    for path in sorted(secrets):
        s = secrets[path]
        h.update(f"{path}\0{s.owner}\0{s.group}\0{s.mode:o}\0".encode())
        h.update(hashlib.sha256(s.data).digest())
    return h.hexdigest()


def archive(secrets: Mapping[str, SecretFile], root: str, secrets_digest: str, mtime: int | None = None) -> bytes:
    """The tar archive of the folder `root` with `secrets` (paths made relative to it) and the marker.
    Folders are root's, 0700, or 0711 when a file below is someone else's (so its owner can reach it
    without listing the folder)."""
    base = PurePosixPath(root)
    files = {PurePosixPath(p).relative_to(base): s for p, s in secrets.items()}
    files[PurePosixPath(MARKER)] = SecretFile(f"{secrets_digest}\n".encode(), "root", "root", 0o400)
    shared = {d for rel, s in files.items() if (s.owner, s.group) != ("root", "root") for d in rel.parents}
    folders = sorted({d for rel in files for d in rel.parents})  # "." first
    stamp = int(time.time()) if mtime is None else mtime
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in folders:
            tar.addfile(_info(str(d), tarfile.DIRTYPE, 0o711 if d in shared else 0o700, "root", "root", stamp))
        for rel in sorted(files):
            s = files[rel]
            info = _info(str(rel), tarfile.REGTYPE, s.mode, s.owner, s.group, stamp)
            info.size = len(s.data)
            tar.addfile(info, io.BytesIO(s.data))
    return out.getvalue()


def _info(name: str, kind: bytes, mode: int, owner: str, group: str, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, mtime
    # tar extracting as root takes the names when the target knows them; else ids 0: root, never wider
    info.uname, info.gname, info.uid, info.gid = owner, group, 0, 0
    return info
