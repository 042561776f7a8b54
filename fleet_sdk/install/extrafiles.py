"""The files an install hands nixos-anywhere, laid out in a private RAM folder (fleet_sdk.fs.private:
0700, removed when the install ends however it ends):

- extra/: copied onto the new system's root (`--extra-files`, clan's activation tree, reference
  clan.md §3.5): var/lib/sops-nix/key.txt and activation/… (0600), the machine's ssh host key pair
  at etc/ssh/ssh_host_ed25519_key{,.pub}, so the new system's host key is the one in vars from its
  first boot, and the install marker var/lib/fleet/install.json. Folders of the system (var, etc,
  …) are 0755, since tar keeps modes on the new root; sops-nix's own folder stays 0700.
- disk-keys/: one file per `--disk-encryption-keys` (neededFor=partitioning vars).
- id_ed25519: the deploy key nixos-anywhere logs in with, when it comes from vars.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fleet_sdk.errors import InstallError
from fleet_sdk.install.model import MARKER, InstallRequest
from fleet_sdk.tools.nixos_anywhere import DiskKey

HOST_KEY = "etc/ssh/ssh_host_ed25519_key"
PRIVATE_ROOTS = ("var/lib/sops-nix",)  # folders that stay 0700 on the new system


@dataclass(frozen=True)
class Prepared:
    extra: Path
    disk_keys: tuple[DiskKey, ...]
    identity_file: Path | None


def prepare(ram: Path, request: InstallRequest, layout_digest: str | None) -> Prepared:
    """Write everything below `ram` (a private folder) and say where it is."""
    extra = ram / "extra"
    extra.mkdir(mode=0o700)
    for path, secret in sorted(request.secrets.items()):
        _put(request.machine, extra, path, secret.data, 0o600)
    if request.host_key_pair is not None:
        private, public = request.host_key_pair
        _put(request.machine, extra, f"/{HOST_KEY}", private, 0o600)
        _put(request.machine, extra, f"/{HOST_KEY}.pub", public, 0o644)
    marker = {"machine": request.machine, "layout": layout_digest}
    _put(request.machine, extra, MARKER, (json.dumps(marker, sort_keys=True) + "\n").encode(), 0o644)
    keys = []
    for n, (remote, data) in enumerate(sorted(request.disk_keys.items())):
        local = ram / "disk-keys" / str(n)
        local.parent.mkdir(mode=0o700, exist_ok=True)
        _create(local, data, 0o600)
        keys.append(DiskKey(remote, local))
    identity = request.identity_file
    if identity is None and request.identity is not None:
        identity = ram / "id_ed25519"
        _create(identity, request.identity, 0o600)
    return Prepared(extra, tuple(keys), identity)


def _put(machine: str, extra: Path, path: str, data: bytes, mode: int) -> None:
    p = PurePosixPath(path)
    if not p.is_absolute() or ".." in p.parts or str(p) != path:
        raise InstallError(machine, f"extra file {path!r} is not a normalised absolute path")
    rel = p.relative_to("/")
    folder = extra
    for part in rel.parts[:-1]:
        folder = folder / part
        private = any(str(PurePosixPath(*folder.relative_to(extra).parts)).startswith(r) for r in PRIVATE_ROOTS)
        if not folder.exists():
            folder.mkdir()
            os.chmod(folder, 0o700 if private else 0o755)  # not the umask's choice
    _create(extra / rel, data, mode)


def _create(path: Path, data: bytes, mode: int) -> None:
    """A new file with `mode` from its first byte (never readable by others, even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.fchmod(fd, mode)  # the umask may have narrowed it; never widened
    with os.fdopen(fd, "wb") as f:
        f.write(data)
