"""Built-in generators whose files are byte-compatible with clan's services (reference/clan.md §7, §8).

clan's NixOS modules (sshd, users, emergency-access, state-version) read these vars by generator and
file name, so names, flags and bytes follow clan's scripts:

- `openssh` / `openssh-ca` / `deploy-key`: `ssh-keygen -t ed25519 -N "" -C ""`, whose `.pub` line
  ends with " \\n" (an empty comment after the separating space).
- `openssh-cert`: `ssh-keygen -s <ca> -I <machine> -h -n <machine>.<domain>,…`: a host certificate,
  serial 0, valid forever.
- `user-password-<user>` / `emergency-access`: a six-word passphrase (xkcdpass's word list) and its
  SHA-512 crypt hash (`$6$…`, no newline), made by `openssl passwd -6 -stdin`.
- `state-version`: the NixOS release, e.g. `25.05`, without a newline.

They are Python generators: no sandbox, and the tools run through a `fleet_sdk.tools.runner.Runner` with
secrets on stdin only. Nothing but the declared files is left in `$out`.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from fleet_sdk.errors import SpecError
from fleet_sdk.fs import atomic as fsutil
from fleet_sdk.spec.generators import Generator, GeneratorFile, Prompt
from fleet_sdk.tools.runner import LOCAL, Runner
from fleet_sdk.vars import libcrypt, sshcert

TOOL_TIMEOUT = 60.0
PASSPHRASE_WORDS = 6
# openssl passwd -stdin silently cuts a line at 256 bytes; refuse rather than hash a prefix.
OPENSSL_PASSWD_MAX = 256
# Machine names and search domains end up in a comma-separated principals list.
_PRINCIPAL_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_STATE_VERSION = re.compile(r"[0-9]+\.[0-9]+")
_SSH_KEYGEN_HINT = "ssh-keygen is not installed: install OpenSSH (Debian package openssh-client)"
_OPENSSL_HINT = "openssl is not installed: install OpenSSL (Debian package openssl)"

Inputs = dict[str, dict[str, bytes]]
Prompts = dict[str, str]


def openssh() -> Generator:
    """The machine's ed25519 host key (clan sshd server role)."""
    return Generator(
        name="openssh",
        origin="stock",
        files=(GeneratorFile(name="ssh.id_ed25519"), GeneratorFile(name="ssh.id_ed25519.pub", secret=False)),
        python=_openssh,
    )


def openssh_ca() -> Generator:
    """The fleet's SSH certificate authority; only an input of `openssh-cert`, never deployed."""
    return Generator(
        name="openssh-ca",
        origin="stock",
        share=True,
        files=(
            GeneratorFile(name="id_ed25519", deploy=False),
            GeneratorFile(name="id_ed25519.pub", secret=False, deploy=False),
        ),
        python=_openssh_ca,
    )


def openssh_cert(machine: str, domains: list[str]) -> Generator:
    """`machine`'s host certificate for `<machine>.<domain>` per search domain, signed by `openssh-ca`.

    The validation is clan's, so a changed machine name or domain set regenerates the certificate."""
    problems = [
        f"generator 'openssh-cert': {what} {value!r}: use letters, digits, '_', '.' and '-'"
        for what, value in [("machine", machine), *(("domain", d) for d in domains)]
        if not _PRINCIPAL_PART.fullmatch(value)
    ]
    if not domains:
        problems.append("generator 'openssh-cert': domains: give at least one search domain")
    if problems:
        raise SpecError(problems)
    # clan dedups and sorts the domains (attrNames of groupBy) before building the principals
    principals = ",".join(f"{machine}.{d}" for d in sorted(set(domains)))

    def generate_openssh_cert(inputs: Inputs, prompts: Prompts, out: Path) -> None:
        ca_key = _input(inputs, "openssh-ca", "id_ed25519")
        host_public = _input(inputs, "openssh", "ssh.id_ed25519.pub")
        # the comment ssh-keygen gives a certificate of a key file without comment: its file name
        cert = sshcert.sign_host_key(ca_key, host_public, machine, principals.split(","), "ssh.id_ed25519.pub")
        _write(out / "ssh.id_ed25519-cert.pub", cert)

    return Generator(
        name="openssh-cert",
        origin="stock",
        files=(GeneratorFile(name="ssh.id_ed25519-cert.pub", secret=False),),
        dependencies=("openssh", "openssh-ca"),
        validation={"domains": {d: d for d in domains}, "name": machine},
        python=generate_openssh_cert,
    )


def user_password(user: str, prompt: bool = True, share: bool = False) -> Generator:
    """`user`'s login password (clan users service): prompted (empty = generate) or generated, and
    its SHA-512 crypt hash for `users.users.<user>.hashedPasswordFile`."""

    def generate_user_password(inputs: Inputs, prompts: Prompts, out: Path) -> None:
        # clan: `echo "$prompt_value" | tr -d "\n"`, generating when nothing is left
        given = prompts.get("user-password", "").replace("\n", "") if prompt else ""
        password = given or passphrase()
        _write(out / "user-password", password.encode())
        _write(out / "user-password-hash", sha512_crypt(password))

    prompts = (
        (
            Prompt(
                name="user-password",
                description="Leave empty to generate automatically",
                type="hidden",
                persist=True,
            ),
        )
        if prompt
        else ()
    )
    return Generator(
        name=f"user-password-{user}",
        origin="stock",
        share=share,
        files=(
            GeneratorFile(name="user-password", deploy=False),
            GeneratorFile(name="user-password-hash", needed_for="users"),
        ),
        prompts=prompts,
        python=generate_user_password,
    )


def emergency_access() -> Generator:
    """The initrd emergency shell's password; its hash is public (read at evaluation time)."""
    return Generator(
        name="emergency-access",
        origin="stock",
        files=(GeneratorFile(name="password", deploy=False), GeneratorFile(name="password-hash", secret=False)),
        python=_emergency_access,
    )


def state_version(version: str = "25.05") -> Generator:
    """The NixOS state version, fixed at first generation (no validation: changing `version` later
    must not regenerate it, and clan's generator has none)."""
    if not _STATE_VERSION.fullmatch(version):
        raise SpecError(f"generator 'state-version': version {version!r}: use a NixOS release like 25.05")

    def generate_state_version(inputs: Inputs, prompts: Prompts, out: Path) -> None:
        _write(out / "version", version.encode())

    return Generator(
        name="state-version",
        origin="stock",
        files=(GeneratorFile(name="version", secret=False),),
        python=generate_state_version,
    )


def disk_passphrase(name: str = "zfs", file: str = "key") -> Generator:
    """A disk-encryption passphrase (`neededFor = partitioning`: the installer hands it to disko):
    six words joined by '-' without a newline, typeable at the initrd prompt. A trailing newline
    would enrol a LUKS key slot nobody can type."""

    def generate_disk_passphrase(inputs: Inputs, prompts: Prompts, out: Path) -> None:
        _write(out / file, passphrase().encode())

    return Generator(
        name=name,
        origin="stock",
        files=(GeneratorFile(name=file, needed_for="partitioning"),),
        python=generate_disk_passphrase,
    )


def deploy_key() -> Generator:
    """The fleet's deploy key: its public half is what the clouds let in first (fleet_sdk.vars.deploykey)."""
    return Generator(
        name="deploy-key",
        origin="stock",
        share=True,
        files=(GeneratorFile(name="id_ed25519", deploy=False), GeneratorFile(name="id_ed25519.pub", secret=False)),
        python=_deploy_key,
    )


def passphrase(words: int = PASSPHRASE_WORDS) -> str:
    """`words` random words joined by '-', as `xkcdpass --delimiter -` makes them."""
    wordlist = _wordlist()
    return "-".join(secrets.choice(wordlist) for _ in range(words))


def sha512_crypt(password: str, runner: Runner | None = None) -> bytes:
    """SHA-512 crypt (`$6$<salt>$<hash>`, 5000 rounds, random salt) without a newline, as
    `mkpasswd -m sha-512` writes it. The password goes to openssl on stdin."""
    runner = LOCAL if runner is None else runner
    data = password.encode()
    if not data or b"\n" in data or len(data) > OPENSSL_PASSWD_MAX:
        raise ValueError(f"a password must be one line of 1 to {OPENSSL_PASSWD_MAX} bytes")
    if (hashed := libcrypt.sha512_crypt(data)) is not None:
        return hashed  # in-process: no openssl process per password
    result = runner.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=data,
        timeout=TOOL_TIMEOUT,
        secrets=[password],
        hint=_OPENSSL_HINT,
    )
    hashed = result.stdout.rstrip(b"\n")
    if not hashed.startswith(b"$6$") or b"\n" in hashed:
        raise ValueError("openssl passwd -6 did not print one SHA-512 crypt hash")
    return hashed


def _openssh(inputs: Inputs, prompts: Prompts, out: Path) -> None:
    _ssh_keygen(out, "ssh.id_ed25519")


def _openssh_ca(inputs: Inputs, prompts: Prompts, out: Path) -> None:
    _ssh_keygen(out, "id_ed25519")


def _deploy_key(inputs: Inputs, prompts: Prompts, out: Path) -> None:
    _ssh_keygen(out, "id_ed25519")


def _emergency_access(inputs: Inputs, prompts: Prompts, out: Path) -> None:
    password = passphrase()
    _write(out / "password", password.encode())
    _write(out / "password-hash", sha512_crypt(password))


def _ssh_keygen(out: Path, name: str) -> None:
    """What `ssh-keygen -t ed25519 -N "" -C "" -f $out/<name>` writes, without a process: the
    OpenSSH private key (0600) and the public line with ssh-keygen's empty comment (" \n")."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH) + b" \n"
    fd = os.open(out / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    (out / f"{name}.pub").write_bytes(public)


@functools.cache
def _wordlist() -> tuple[str, ...]:
    # xkcdpass's default list (EFF long) and default lengths (5-9); words with '-' (t-shirt, yo-yo)
    # are left out so the passphrase always splits back into its words.
    path = importlib.resources.files("xkcdpass").joinpath("static", "eff-long")
    words = tuple(sorted({w for w in path.read_text(encoding="utf-8").split() if re.fullmatch(r"[a-z]{5,9}", w)}))
    if len(words) < 4096:  # at least 12 bits a word, 72 bits for six
        raise RuntimeError(f"xkcdpass's word list {path} has only {len(words)} usable words")
    return words


def _input(inputs: Inputs, dep: str, file: str) -> bytes:
    try:
        return inputs[dep][file]
    except KeyError:
        raise ValueError(f"input {dep}/{file} is missing; generate {dep!r} first") from None


@contextmanager
def _private_dir(out: Path) -> Iterator[Path]:
    """A 0700 folder beside the outputs (the same private, RAM-backed place) that is always removed."""
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    # Replaces a persisted prompt's copy; 0600 because most of these bytes are secrets.
    path.unlink(missing_ok=True)
    fsutil.write_new(path, data)


def nixos_defaults(machine: str, domains: list[str]) -> tuple[Generator, ...]:
    """The vars clan's services read on a NixOS machine: host key and certificate (sshd), root's
    generated password, emergency access, state version, and the fleet's deploy key."""
    return (
        openssh(),
        openssh_ca(),
        openssh_cert(machine, domains),
        user_password("root", prompt=False),
        emergency_access(),
        state_version("25.05"),
        deploy_key(),
    )
