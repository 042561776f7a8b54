"""The sops/ tree of a fleet repository, as clan lays it out (reference/clan.md §2.2, §3).

    sops/users/<u>/key.json            admin public keys
    sops/machines/<m>/key.json         machine public keys
    sops/groups/<g>/{machines,users}/  symlinks to members
    sops/secrets/<name>/secret         sops documents, with member symlinks beside them
    vars/**/<file>/secret              the same, for generated vars

Who may read a secret is decided by its member symlinks alone (`recipients_of`); every writer and
checker uses that one rule.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.errors import BrokenMemberError, NoAdminKeyError, NoMatchingKeyError, SopsError
from fleet_sdk.fs import atomic as fsutil
from fleet_sdk.sops import age
from fleet_sdk.sops.document import encrypt, recipients, rekey

USER_NAME = re.compile(r"^[a-z_]([a-z0-9_-]{0,31})?$")
SECRET_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
KINDS = ("machines", "users", "groups")


@dataclass(frozen=True)
class KeyEntry:
    publickey: str
    type: str = "age"


def read_key_json(path: Path) -> list[KeyEntry]:
    """key.json in clan's list form, or the older single-object form: at least one age entry with a
    publickey string (whether it parses as a key is checked by SopsTree.keys_of)."""
    source = str(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SopsError("missing; re-add the member or remove the links to it", source) from None
    except IsADirectoryError:
        raise SopsError("is a folder; it should be the member's key file, as clan writes it", source) from None
    except UnicodeDecodeError:
        raise SopsError("not UTF-8 text; restore it from git or re-add the member", source) from None
    except json.JSONDecodeError as e:
        raise SopsError(f"not valid JSON ({e.msg}); restore it from git or re-add the member", source) from None
    shape = 'expected [{"publickey": "age1…", "type": "age"}]'
    items = data if isinstance(data, list) else [data]
    if not items:
        raise SopsError(f"no key in it; {shape}", source)
    entries = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("publickey"), str):
            raise SopsError(f"{shape}, got an entry {json.dumps(item)[:60]} without a publickey string", source)
        kind = item.get("type", "age")
        if kind != "age":
            raise SopsError(f'type {kind!r}: only age keys (type "age") can be recipients here', source)
        entries.append(KeyEntry(item["publickey"], kind))
    return entries


def key_json_bytes(entries: Iterable[KeyEntry]) -> bytes:
    """Byte-for-byte what clan writes: a list sorted by key, 2-space indent, no final newline."""
    unique = {e.publickey: e for e in entries}
    items = [{"publickey": e.publickey, "type": e.type} for _, e in sorted(unique.items())]
    return json.dumps(items, indent=2).encode()


class SopsTree:
    """The sops/ folder of one fleet repository."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.root = repo / "sops"
        self._keys: dict[tuple[str, str], list[str]] = {}

    def member_dir(self, kind: str, name: str) -> Path:
        return self.root / kind / name

    def secret_dir(self, name: str) -> Path:
        if not SECRET_NAME.match(name):
            raise SopsError(f"secret name {name!r}: use letters, digits, '.', '_' and '-'")
        return self.root / "secrets" / name

    def names(self, kind: str) -> list[str]:
        """Members of `kind` with a key; a member whose key.json is not a file is an error, not a
        member without a key (that would hide an admin, or re-create a machine's key)."""
        for folder in (self.root, self.root / kind):
            if folder.exists() and not folder.is_dir():
                raise SopsError("is not a folder; restore it from git", str(folder.relative_to(self.repo)))
        d = self.root / kind
        if not d.is_dir():
            return []
        found = []
        for p in sorted(d.iterdir()):
            key = p / "key.json"
            if key.is_file():
                found.append(p.name)
            elif not p.is_dir():
                raise SopsError(
                    f"is not a folder (a member is sops/{kind}/<name>/key.json); restore it from git",
                    str(p.relative_to(self.repo)),
                )
            elif key.exists() or key.is_symlink():
                raise SopsError("is not a key.json file; restore it from git", str(key.relative_to(self.repo)))
        return found

    def keys_of(self, kind: str, name: str) -> list[str]:
        # cached per tree: every secret written reads its members' keys; write_keys invalidates
        cached = self._keys.get((kind, name))
        if cached is None:
            path = self.member_dir(kind, name) / "key.json"
            cached = [e.publickey for e in read_key_json(path)]
            for key in cached:  # a key nothing can encrypt to is refused here, naming its file
                try:
                    age.parse_recipient(key)
                except SopsError as e:
                    raise SopsError(
                        f"publickey: {e}; restore the file from git or re-add the member", str(path)
                    ) from None
            self._keys[(kind, name)] = cached
        return list(cached)

    def write_keys(self, kind: str, name: str, entries: Iterable[KeyEntry]) -> bool:
        if kind == "users" and not USER_NAME.match(name):
            raise SopsError(f"user name {name!r}: use lower-case letters, digits, '_' and '-', 1-32 long")
        self._keys.pop((kind, name), None)
        return fsutil.write_if_changed(self.member_dir(kind, name) / "key.json", key_json_bytes(entries), 0o644)

    def group_members(self, group: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for kind in ("machines", "users"):
            d = self.root / "groups" / group / kind
            out[kind] = sorted(p.name for p in d.iterdir()) if d.is_dir() else []
        return out

    # -- members of one secret -------------------------------------------------------------

    def members(self, secret_dir: Path) -> dict[str, list[str]]:
        """Member links of a secret by kind, and of the groups it links; a link that points nowhere,
        loops, or a file where a folder of links should be is an error naming it."""
        out: dict[str, list[str]] = {}
        for kind in KINDS:
            out[kind] = names = self._links(secret_dir / kind)
            for name in names:
                target = self._member(secret_dir / kind / name, kind, name)
                if kind == "groups":
                    for member_kind in ("machines", "users"):
                        for member in self._links(target / member_kind):
                            self._member(target / member_kind / member, member_kind, member)
        return out

    def _links(self, d: Path) -> list[str]:
        """Names in a folder of member links (none when it does not exist)."""
        if d.is_dir():
            return sorted(p.name for p in d.iterdir())
        if os.path.lexists(d):
            raise BrokenMemberError(
                "is a file where a folder of member links should be; remove it and run `fleet vars fix`",
                self._where(d),
            )
        return []

    def _member(self, link: Path, kind: str, name: str) -> Path:
        """The sops/<kind>/<name> folder a member link points to."""
        fix = f"restore sops/{kind}/{name} or delete the link and run `fleet vars fix`"
        try:
            target = link.resolve()
        except (RuntimeError, OSError):  # a loop: RuntimeError before Python 3.13, OSError since
            raise BrokenMemberError(f"is a symbolic link loop; {fix}", self._where(link)) from None
        if target.parent.name == kind and target.is_dir() and kind != "groups" and not (target / "key.json").is_file():
            raise BrokenMemberError(
                f"sops/{kind}/{name}/key.json is missing, not a file or a link loop; restore it from git or re-add "
                "the member",
                self._where(link),
            )
        if not (target.parent.name == kind and target.is_dir()):
            raise BrokenMemberError(
                f"points nowhere ({os.readlink(link) if link.is_symlink() else 'not a link'}); {fix}",
                self._where(link),
            )
        return target

    def _where(self, path: Path) -> str:
        return str(path.relative_to(self.repo)) if path.is_relative_to(self.repo) else str(path)

    def recipients_of(self, secret_dir: Path) -> set[str]:
        """The recipient rule: keys of linked machines and users, plus those of linked groups' members."""
        return self.keys_of_members(self.members(secret_dir))

    def keys_of_members(self, members: Mapping[str, Iterable[str]]) -> set[str]:
        """Keys of machines and users by name, and of the members of groups by name."""
        keys: set[str] = set()
        for kind, names in members.items():
            for name in names:
                if kind == "groups":
                    keys |= self.keys_of_members(self.group_members(name))
                else:
                    keys.update(self.keys_of(kind, name))
        return keys

    def links_machine(self, secret_dir: Path, machine: str) -> bool:
        return machine in self.machines_linked(secret_dir)

    def machines_linked(self, secret_dir: Path) -> set[str]:
        """Machines that may read the secret: linked directly or through a linked group."""
        machines = link_names(secret_dir / "machines")
        for group in link_names(secret_dir / "groups"):
            machines.update(self.group_members(group)["machines"])
        return machines

    def add_member(self, secret_dir: Path, kind: str, name: str) -> None:
        """A relative link <secret>/<kind>/<name> -> sops/<kind>/<name>, as clan makes it."""
        link = secret_dir / kind / name
        if link.is_symlink():
            return
        fsutil.ensure_dir(link.parent)
        os.symlink(os.path.relpath(self.member_dir(kind, name), link.parent), link)

    # -- secrets ---------------------------------------------------------------------------

    def write_secret(self, secret_dir: Path, plaintext: bytes, members: Mapping[str, Iterable[str]]) -> None:
        """Encrypt `plaintext` to the secret's existing members plus `members`, then link the new ones.

        The file is complete before any link appears, so an interrupted write leaves at most
        recipients without links, which `fix` repairs."""
        wanted = {kind: sorted(set(names)) for kind, names in members.items()}  # read twice below
        fsutil.write_atomic(secret_dir / "secret", self._document(secret_dir, plaintext, wanted))
        self._link(secret_dir, wanted)

    def _document(self, secret_dir: Path, plaintext: bytes, members: Mapping[str, Iterable[str]]) -> bytes:
        keys = self.recipients_of(secret_dir) if secret_dir.is_dir() else set()
        keys |= self.keys_of_members(members)
        return encrypt(plaintext, sorted(keys)).encode()

    def _link(self, secret_dir: Path, members: Mapping[str, Iterable[str]]) -> None:
        for kind, names in members.items():
            for name in sorted(set(names)):
                self.add_member(secret_dir, kind, name)

    def read_secret(self, secret_dir: Path, identities: list[str]) -> bytes:
        """The plaintext of secret_dir/secret (a clan secret's or a vars file's), its MAC checked."""
        from fleet_sdk.sops.document import decrypt

        path = secret_dir / "secret"
        return decrypt(path.read_bytes(), identities, self._where(path))

    def rekey(self, secret_dir: Path, identities: list[str]) -> bool:
        """Re-wrap the data key for exactly the recipients the links name. True if it changed."""
        path = secret_dir / "secret"
        document = path.read_text()
        source = str(path.relative_to(self.repo))
        wanted = self.recipients_of(secret_dir)
        if set(recipients(document, source)) == wanted:
            return False
        fsutil.write_atomic(path, rekey(document, identities, sorted(wanted), source).encode())
        return True

    def admin(self, identities: list[str]) -> str:
        """The user of sops/users/ whose key the operator holds."""
        if not identities:
            raise NoAdminKeyError("no admin age key: run `fleet vars keygen`, or set SOPS_AGE_KEY / SOPS_AGE_KEY_FILE")
        mine = {age.public_key(i) for i in identities}
        for user in self.names("users"):
            if mine & set(self.keys_of("users", user)):
                return user
        raise NoAdminKeyError(
            f"your age key ({sorted(mine)[0]}) is not the key of any user in {self.root / 'users'}; "
            "run `fleet vars keygen` to register it"
        )

    def ensure_machine_key(self, machine: str, identities: list[str]) -> tuple[str, bool]:
        """The machine's age public key, creating its key pair when it has none (clan.md §3.2).
        Returns (key, created); see ensure_machine_keys."""
        return self.ensure_machine_keys([machine], identities)[machine]

    def ensure_machine_keys(self, machines: Iterable[str], identities: list[str]) -> dict[str, tuple[str, bool]]:
        """Each machine's age public key, creating the missing key pairs (clan.md §3.2).

        The private key goes to sops/secrets/<m>-age.key/secret, readable by the operator (not the
        machine); then every secret that links a new machine is re-keyed, in one pass over the store."""
        out: dict[str, tuple[str, bool]] = {}
        missing = []
        for machine in machines:
            key = self.member_dir("machines", machine) / "key.json"
            if key.is_file():
                out[machine] = (self.keys_of("machines", machine)[0], False)
            elif key.exists() or key.is_symlink():
                # never make a new key (and overwrite <m>-age.key) for a machine whose key.json is damaged
                raise SopsError("is not a key.json file; restore it from git", str(key.relative_to(self.repo)))
            else:
                missing.append(machine)
        if missing:
            admin = self.admin(identities)
            files: list[tuple[Path, bytes, int]] = []
            for machine in missing:
                private, public = age.generate()
                secret_dir = self.secret_dir(f"{machine}-age.key")
                document = self._document(secret_dir, private.encode(), {"users": [admin]})
                files.append((secret_dir / "secret", document, 0o600))
                files.append(
                    (self.member_dir("machines", machine) / "key.json", key_json_bytes([KeyEntry(public)]), 0o644)
                )
                out[machine] = (public, True)
            # all key files at once: one sync for a hundred machines instead of four each
            fsutil.write_atomic_many(files)
            for machine in missing:
                self._keys.pop(("machines", machine), None)
                self._link(self.secret_dir(f"{machine}-age.key"), {"users": [admin]})
        created = set(missing)
        if created:
            for secret_dir in secret_dirs(self.repo):
                if self.machines_linked(secret_dir) & created:
                    self.rekey(secret_dir, identities)
        return out

    def machine_private_key(self, machine: str, identities: list[str]) -> str:
        from fleet_sdk.sops.document import decrypt

        path = self.secret_dir(f"{machine}-age.key") / "secret"
        return decrypt(path.read_bytes(), identities, str(path.relative_to(self.repo))).decode()


def link_names(d: Path) -> set[str]:
    """Names in a member-link folder (none when it does not exist)."""
    try:
        return set(os.listdir(d))
    except (FileNotFoundError, NotADirectoryError):
        return set()


def secret_dirs(repo: Path) -> Iterator[Path]:
    """Every folder under vars/ and sops/secrets/ holding a `secret` file (a var may itself be named
    `secret`, so the test is for a regular file)."""
    for top in (repo / "vars", repo / "sops" / "secrets"):
        for dirpath, _dirs, files in os.walk(top):
            if "secret" in files and not os.path.islink(os.path.join(dirpath, "secret")):
                yield Path(dirpath)


def rekey_all(tree: SopsTree, identities: list[str]) -> tuple[list[Path], list[Path]]:
    """Re-key every secret whose recipients differ from its links. Returns (changed, not decryptable)."""
    changed, stuck = [], []
    for d in secret_dirs(tree.repo):
        try:
            if tree.rekey(d, identities):
                changed.append(d)
        except NoMatchingKeyError:
            stuck.append(d)
    return changed, stuck
