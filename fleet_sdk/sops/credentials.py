"""Cloud provider credentials kept as clan secrets, read as `clan secrets get NAME` reads them.

Stack config names the secret (`fleet:hetznerTokenSecret: hetzner-api-token`); its value is
sops/secrets/<name>/secret in the fleet repository, decrypted with the operator's age key
(SOPS_AGE_KEY, SOPS_AGE_KEY_FILE or the default key file). The plaintext goes to the caller only —
the graph wraps it in a Pulumi secret — and is never logged, printed or written.

Policy: a malformed or unknown name and a damaged file are refused always. A secret the operator
cannot open is refused by `pulumi up`; a dry run (`pulumi preview`, `fleet plan`) gets a note and
no value, so a plan can be made without the key. So does a dry run against a fleet repository that
has no sops/ folder at all (the stack's repository is not on this machine, as for a stack planned
from the SDK's own checkout); a repository with sops/ but without the named secret is a typo, refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.errors import (
    CloudSecretError,
    NoMatchingKeyError,
    SecretLockedError,
    SecretNameError,
    SecretNotFoundError,
    SopsError,
)
from fleet_sdk.sops import age
from fleet_sdk.sops.document import decrypt
from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.spec import Fleet
from fleet_sdk.stack.settings import CREDENTIAL_KEYS, StackSettings

# clan's rule for secret names (clan.md §3.1), minus names starting with '.' ('.', '..', hidden folders)
SECRET_NAME = re.compile(r"^[a-zA-Z0-9_-][a-zA-Z0-9._-]*$")
_LISTED = 20  # names shown when a secret is not found


@dataclass(frozen=True)
class Credential:
    """A resolved credential: `value` is None when a dry run could not open the secret (see `note`)."""

    key: str  # the stack config key naming the secret
    name: str  # the clan secret
    value: str | None
    note: str | None = None


def check_name(key: str, name: str) -> None:
    if not SECRET_NAME.match(name):
        raise SecretNameError(
            f"{key}: {name!r} cannot name a clan secret; use letters, digits, '.', '_' and '-' "
            "(the folder name under sops/secrets/, e.g. hetzner-api-token)"
        )


def secret_file(repo: Path, key: str, name: str) -> Path:
    """sops/secrets/<name>/secret, after checking the name and that the file exists."""
    check_name(key, name)
    path = repo / "sops" / "secrets" / name / "secret"
    if not path.is_file():
        names = secret_names(repo)
        shown = ", ".join(names[:_LISTED]) + (f" … and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
        raise SecretNotFoundError(
            f"{key}: no clan secret {name!r} (sops/secrets/{name}/secret) in {repo}; "
            + (f"its secrets are: {shown}" if names else "it has no sops/secrets/ yet")
            + f"; create it with `clan secrets set {name}` or correct {key}"
        )
    return path


def secret_names(repo: Path) -> list[str]:
    """Secrets under sops/secrets/, machine age keys (<m>-age.key) left out: they are no credentials."""
    root = repo / "sops" / "secrets"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "secret").is_file() and not p.name.endswith("-age.key"))


def read_secret(repo: Path, key: str, name: str, identities: list[str], env: Mapping[str, str] | None = None) -> str:
    """The plaintext of a clan secret, trailing newlines dropped (as `$(clan secrets get NAME)` gives it)."""
    path = secret_file(repo, key, name)
    source = f"sops/secrets/{name}/secret"
    try:
        plaintext = decrypt(path.read_bytes(), identities, source)
    except NoMatchingKeyError:
        raise SecretLockedError(locked_message(repo, key, name, identities, env)) from None
    except SopsError as e:
        raise CloudSecretError(f"{key}: {e}") from None
    try:
        value = plaintext.decode().rstrip("\r\n")
    except UnicodeDecodeError:
        raise CloudSecretError(f"{key}: {source} is not text; a provider credential must be") from None
    if not value:
        raise CloudSecretError(f"{key}: {source} is empty; set it with `clan secrets set {name}`")
    return value


def credential(
    repo: Path,
    key: str,
    name: str,
    *,
    dry_run: bool,
    identities: list[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Credential:
    """The credential named by stack config `key`, under the module's policy for dry runs."""
    if dry_run and elsewhere(repo):
        check_name(key, name)
        return Credential(key, name, None, _elsewhere_note(repo, key, name))
    ids = age.operator_identities(env) if identities is None else identities
    try:
        return Credential(key, name, read_secret(repo, key, name, ids, env))
    except SecretLockedError as e:
        if not dry_run:
            raise
        note = f"{e}. Until then the plan shows the provider's credential as unknown; `pulumi up` refuses."
        return Credential(key, name, None, note)


def elsewhere(repo: Path) -> bool:
    """Whether the fleet repository's secrets are not on this machine: it has no sops/ folder."""
    return not (repo / "sops").is_dir()


def _elsewhere_note(repo: Path, key: str, name: str) -> str:
    return (
        f"{key}: the fleet repository {repo} has no sops/ folder here, so secret {name!r} cannot be read; "
        "the plan shows the provider's credential as unknown and `pulumi up` refuses"
    )


def clouds_of(fleet: Fleet) -> set[str]:
    """The clouds the fleet's enabled machines use, by host kind, and cloudflare for their DNS
    records: their credentials (CREDENTIAL_KEYS, none for a plug-in's) are needed."""
    clouds: set[str] = set()
    for m in fleet.machines:
        if m.cloud and m.host is not None:
            clouds |= {m.host.kind, "cloudflare"} if m.host.dns_records else {m.host.kind}
    return clouds


def credentials(
    settings: StackSettings,
    clouds: Iterable[str],
    *,
    dry_run: bool,
    identities: list[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Credential]:
    """The configured credentials of `clouds`, by cloud. A configured secret of a cloud no enabled
    machine uses is only looked for (a typo shows at once), not opened."""
    used = set(clouds)
    if identities is None and used & set(settings.credential_secrets):
        identities = age.operator_identities(env)
    found: dict[str, Credential] = {}
    refused: list[CloudSecretError] = []
    for cloud, name in sorted(settings.credential_secrets.items()):
        key = CREDENTIAL_KEYS[cloud]
        try:
            if cloud in used:
                found[cloud] = credential(settings.repo, key, name, dry_run=dry_run, identities=identities, env=env)
            elif dry_run and elsewhere(settings.repo):
                check_name(key, name)
            else:
                secret_file(settings.repo, key, name)
        except CloudSecretError as e:
            refused.append(e)
    if refused:
        # every credential's problem at once, as the one class they share (else the base class)
        kinds = {type(e) for e in refused}
        kind = kinds.pop() if len(kinds) == 1 else CloudSecretError
        raise kind("\n".join(str(e) for e in refused))
    return found


def locked_message(repo: Path, key: str, name: str, identities: list[str], env: Mapping[str, str] | None = None) -> str:
    """Why the operator cannot open the secret and who can help: its readers, and the fix."""
    tree = SopsTree(repo)
    secret_dir = repo / "sops" / "secrets" / name
    source = f"sops/secrets/{name}/secret"
    try:
        members = tree.members(secret_dir)
    except SopsError:
        members = {}
    readers = ", ".join(f"{kind.rstrip('s')} {n}" for kind, names in members.items() for n in names)
    readers = readers or "no linked member"
    if not identities:
        path = age.key_file(os.environ if env is None else env)
        where = "SOPS_AGE_KEY holds no AGE-SECRET-KEY-1… line" if path is None else f"none in {path}"
        return (
            f"{key}: {source} is encrypted to {readers}, and no age key of yours was found ({where}); "
            "set SOPS_AGE_KEY_FILE to the key file of one of them"
        )
    mine = {age.public_key(i) for i in identities}
    try:
        user = next((u for u in tree.names("users") if mine & set(tree.keys_of("users", u))), None)
    except SopsError:
        user = None
    if user is None:
        return (
            f"{key}: {source} is encrypted to {readers}, not to your age key ({sorted(mine)[0]}), which is no "
            f"user's in sops/users/; run `fleet vars keygen`, then one of them links your user to {name} and "
            "runs `fleet vars fix`"
        )
    if user in members.get("users", []):
        return (
            f"{key}: your user {user} is linked to {source} but it is not encrypted to your key yet; "
            f"one of its readers ({readers}) runs `fleet vars fix`"
        )
    return (
        f"{key}: {source} is encrypted to {readers}, not to you (user {user}); one of them links you "
        f"(`clan secrets users add-secret {user} {name}`) and runs `fleet vars fix`"
    )
