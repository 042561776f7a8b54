"""`fleet vars generate` for 100 machines against the clan way (one process per step), in one run.

Every machine declares the prod stack's vars (stacks/prod.py `nixos_vars`): openssh, openssh-ca
(shared), openssh-cert for the search domain "zt", root's generated password, emergency access, the
state version and the deploy key (shared): 5 generators per machine plus 2 shared ones.

Ours: `fleet_sdk.vars.generate.generate(repo, fleet, GenerateOptions(identities=[admin]))` on a fresh
git repository with the admin user registered, as `fleet vars generate` runs it (its default jobs).

Clan way (ClanWay): what clan-core's `clan vars generate` runs (pkgs/clan-cli/clan_lib/vars/generator.py
Generator.execute and the sops secret store), done for real with the same tools, one generator after
the other. Once per run clan's sandbox check (a `bwrap … bash -c :`). Per generator: each secret file
of its dependencies decrypted once per run (clan's secret cache) by `age -d`; its prompts written to
$prompts; its script run in clan's sandbox: `env PATH=… bwrap --unshare-all --tmpfs / --ro-bind
/nix/store … --dev /dev --bind /proc /proc --tmpfs /tmp --chdir / --uid 1000 --gid 1000 --bind <tmp>
<tmp> -- bash -c <script>` (plus /usr and /etc/passwd read-only: this machine's bash and tools are
Debian's, `clan_sandbox`); per secret file `age-keygen -y` of the admin's key (clan derives the admin's
public key on every encryption) and one `age --encrypt --armor` to the admin and, for a deployed file,
every machine declaring the generator (clan's member links written too); public files as `value`; then
clan's commit_files: one `git add` per path (each secret's folder, each value, the validation hash once
per store), `git diff --cached --exit-code`, `git commit --no-verify -- <paths>`. Before a machine's
first deployed secret its age key as clan makes it: `age-keygen`, `age-keygen -y`, `age --encrypt` of
the private key to the admin into sops/secrets/<m>-age.key, committed (2 adds, diff, commit), then
sops/machines/<m>/key.json committed (add, diff, commit). The built-ins' scripts are SCRIPTS (ssh-keygen
for keys and the certificate, a passphrase from /dev/urandom, `openssl passwd -6 -stdin` for hashes).
It is a lower bound of clan: age stands in for sops (not installable here; sops also writes a manifest
file, parses and MACs its JSON, and is a bigger binary), no Nix evaluation, and none of clan's
in-process work (its nix_shell package resolution before every sandboxed run, health checks, the
re-check of every shared secret's recipients for every machine after the run).
Own work: the generators' work alone, `fleet_sdk.vars.execute.run_generator` for each of the same
generators (no store, encryption, locking or git), with the same number of jobs as ours; ours
minus it is what our engine adds around the generators.

Declared in the flake: the same generators (files, dependencies, share, validation), declared as
clan's `clan.core.vars.generators` of each machine's configuration in a flake written by
tests/vars_flake.py (no nixpkgs; every fourth machine a darwin one), their scripts the clan way's
SCRIPTS (openssh-cert's with its machine and principals written in, so its finalScript is one per
machine: 106 finalScripts for 100 machines). Ours: the flake's generators (`flake_generators`, from the
evaluation cache when warm, one `nix eval` for all machines when cold), merged into a fleet of bare
machines (`with_flake_generators`), then `generate`, as a fresh `fleet vars generate` process: every
finalScript realised once (`nix-store --realise`), each generator's realised finalScript run in the
sandbox (bubblewrap). Clan way (FlakeClanWay): as above, the sandbox running `bash -c <realised
finalScript>` as clan does; its finalScripts are realised before (clan's evaluation builds them) and its
evaluation is not counted when warm; when cold it is counted as one evaluation by ours (a lower bound
of clan's). Own work: `run_generator` of each flake generator, its finalScript realised already.
Every flake generator is a sandboxed process with the tools it starts on both sides, so the generators'
own work bounds the ratio: clan way / own work is the most any engine running the same scripts in the
same sandbox can reach.

The acceptance test's flake (bench/vars_flake_shapes.py): the generators of
tests/test_vars_flake_acceptance.py (shared, deployed to all and not deployed, dependencies, prompts,
validation, neededFor partitioning, deploy = false; default printf scripts) on 100 web-, db- and
mac-shaped machines, measured as the flake above; the prompts' values given to ours by
FLEET_PROMPT_LOGIN_PASSWORD and FLEET_PROMPT_LOGIN_BANNER, to the clan way as clan's prompt values.

The ways run in the same process and run, interleaved; only the ratios are meaningful, never a bare
time on its own.

    python bench/vars.py [MACHINES] [ROUNDS]
"""

from __future__ import annotations

import functools
import gc
import graphlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from typing_extensions import override

from fleet_sdk import sops
from fleet_sdk.sops.tree import KeyEntry, SopsTree, key_json_bytes
from fleet_sdk.spec import Fleet, Generator, HetznerHost, Machine
from fleet_sdk.testing import nix_env
from fleet_sdk.tools import nix
from fleet_sdk.tools.runner import LOCAL
from fleet_sdk.vars import execute
from fleet_sdk.vars import stock as builtins
from fleet_sdk.vars.declared import with_flake_generators
from fleet_sdk.vars.execute import run_generator
from fleet_sdk.vars.flake import flake_generators
from fleet_sdk.vars.generate import GenerateOptions, generate
from fleet_sdk.vars.selection import Node, select
from fleet_sdk.vars.store import GeneratorId, generator_id

# The test flake's writer (tests/vars_flake.py): the repository's root on the path when run as a script.
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.append(ROOT)

N = 100
# Best of 2 rounds, interleaved: one round of all the ways takes ~100 s on 2 cores (~30 s the built-ins,
# ~40 s the flake's, ~20 s the acceptance flake's), so the whole benchmark takes under 4 min; the minimum
# is the least noisy estimate on a shared machine.
ROUNDS = 2
DOMAIN = "zt"
ADMIN = "admin"
# `generate`'s default number of jobs (fleet_sdk.vars.generate._run_all); own work runs as many.
JOBS = min(8, (os.cpu_count() or 2) * 2)
GIT_CONFIG = {"user.name": "bench", "user.email": "bench@example.invalid", "commit.gpgsign": "false"}
TOOLS = ("age", "age-keygen", "ssh-keygen", "openssl", "git", "bash", "nix", "nix-store", "bwrap")
# The clan way's temp folders (plaintexts, $in and $out) are in RAM, as ours are
# (fleet_sdk.vars.execute): like for like, and neither way's time includes the other's deleted
# files (on ext4 without a journal, creating a file scans every inode its block group freed in
# the last minutes, so thousands of deleted temp files slow whatever runs next).
RAM_TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None

_PASSPHRASE = 'head -c 24 /dev/urandom | base64 | tr -d "\\n" > "$out"/{password}\n'
_HASH = 'openssl passwd -6 -stdin < "$out"/{password} | tr -d "\\n" > "$out"/{password}-hash\n'
# The generators' work as clan's shell scripts do it; $in, $out, $machine and $principals are set.
SCRIPTS = {
    "openssh": 'ssh-keygen -q -t ed25519 -N "" -C "" -f "$out"/ssh.id_ed25519\n',
    "openssh-ca": 'ssh-keygen -q -t ed25519 -N "" -C "" -f "$out"/id_ed25519\n',
    "deploy-key": 'ssh-keygen -q -t ed25519 -N "" -C "" -f "$out"/id_ed25519\n',
    "openssh-cert": (
        'ssh-keygen -q -s "$in"/openssh-ca/id_ed25519 -I "$machine" -h -n "$principals" \\\n'
        '  "$in"/openssh/ssh.id_ed25519.pub\n'
        'mv "$in"/openssh/ssh.id_ed25519-cert.pub "$out"/ssh.id_ed25519-cert.pub\n'
    ),
    "user-password-root": (_PASSPHRASE + _HASH).format(password="user-password"),
    "emergency-access": (_PASSPHRASE + _HASH).format(password="password"),
    "state-version": 'printf %s 25.05 > "$out"/version\n',
}


def nixos_vars(machine: str) -> tuple[Generator, ...]:
    return builtins.nixos_defaults(machine, [DOMAIN])  # what stacks/prod.py declares


def make_fleet(n: int) -> Fleet:
    names = [f"m{i:03d}" for i in range(n)]
    return Fleet(
        name="bench",
        domain=DOMAIN,
        machines=tuple(
            Machine(
                name=name,
                tags=("nixos",),
                host=HetznerHost(server_type="cx23", location="fsn1"),
                generators=nixos_vars(name),
            )
            for name in names
        ),
    )


def make_repo(root: Path, admin_public: str) -> Path:
    """A fresh git repository (committing works without a global git identity) with the admin user."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for key, value in GIT_CONFIG.items():
        subprocess.run(["git", "-C", str(root), "config", key, value], check=True)
    SopsTree(root).write_keys("users", ADMIN, [KeyEntry(admin_public)])
    return root


def expected_files(fleet: Fleet) -> int:
    """How many `value`/`secret` files the fleet's generators store (shared ones once)."""
    seen: dict[GeneratorId, int] = {}
    for m in fleet.machines:
        for g in fleet.generators_of(m.name):
            seen[generator_id(g, m.name)] = len(g.all_files)
    return sum(seen.values())


def stored_files(repo: Path) -> int:
    return sum(1 for p in (repo / "vars").rglob("*") if p.name in ("value", "secret") and p.is_file())


# -- ours ---------------------------------------------------------------------------------------


def ours(repo: Path, fleet: Fleet, identity: str) -> int:
    return len(generate(repo, fleet, GenerateOptions(identities=[identity])).generated)


def own_work(fleet: Fleet, prompts: dict[str, dict[str, str]] | None = None) -> int:
    """Every generator run by `run_generator` alone, dependencies first, JOBS at a time; the
    dependencies' outputs are passed from memory, the prompts' values (by generator) given."""
    nodes = select(fleet, lambda n: False)
    outputs: dict[GeneratorId, dict[str, bytes]] = {}
    pending = {n.gid: n for n in nodes}
    waiting = {n.gid: set(n.deps) for n in nodes}

    def work(node: Node) -> dict[str, bytes]:
        inputs = {dep.name: outputs[dep] for dep in node.deps}
        return run_generator(node.gid, node.generator, inputs, (prompts or {}).get(node.gid.name, {}))

    running: dict[Future[dict[str, bytes]], GeneratorId] = {}
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        while pending or running:
            for gid in [g for g in pending if not waiting[g]]:
                running[pool.submit(work, pending.pop(gid))] = gid
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                gid = running.pop(future)
                outputs[gid] = future.result()
                for deps in waiting.values():
                    deps.discard(gid)
    return len(outputs)


# -- the clan way -------------------------------------------------------------------------------

# clan's bubblewrap sandbox (clan-core pkgs/clan-cli/clan_lib/sandbox_exec/__init__.py, bubblewrap_cmd):
# a fresh tmpfs root with the Nix store read-only, /bin/sh if there is one, /dev, the host's /proc bound,
# an empty /tmp, uid and gid 1000, then the generator's temp folder bound read-write at its own path.
# LOCAL_ROOT is what this machine needs besides (not clan's): its bash and the tools the scripts run are
# Debian's, in /usr, not in /nix/store, and ssh-keygen fails without /etc/passwd ("No user exists for
# uid 1000"); fleet_sdk/tools/bwrap.py binds the same.
LOCAL_ROOT = [
    "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/bin", "/bin",
    "--symlink", "usr/sbin", "/sbin",
    "--symlink", "usr/lib", "/lib",
    "--symlink", "usr/lib64", "/lib64",
    *(arg for etc in ("/etc/passwd", "/etc/group") if Path(etc).exists() for arg in ("--ro-bind", etc, etc)),
]  # fmt: skip


def clan_sandbox(rw_paths: list[str], cmd: list[str]) -> list[str]:
    """The argv clan runs a generator with on Linux: `bwrap` as clan's nix_shell(["bash", "bubblewrap"], …)
    gives it when neither is shipped with clan-cli (its default package ships age, git and nix only):
    `env PATH=<bash>/bin:<bubblewrap>/bin:$PATH bwrap …` (here PATH is already right)."""
    binds = [arg for path in rw_paths for arg in ("--bind", path, path)]
    return [
        "env", f"PATH={os.environ.get('PATH', '')}",
        "bwrap",
        "--unshare-all",
        "--tmpfs", "/",
        "--ro-bind", "/nix/store", "/nix/store",
        *LOCAL_ROOT,
        "--ro-bind-try", "/bin/sh", "/bin/sh",
        "--dev", "/dev",
        "--bind", "/proc", "/proc",
        "--tmpfs", "/tmp",  # a fresh tmpfs inside the sandbox
        "--chdir", "/",
        "--uid", "1000",
        "--gid", "1000",
        *binds,
        "--",
        *cmd,
    ]  # fmt: skip


class ClanWay:
    """One generator after the other, every step its own process, as clan runs `vars generate`
    (clan-core pkgs/clan-cli/clan_lib/vars/generator.py, Generator.execute, and the sops store it calls).

    Per run: clan's sandbox check once (`sandbox_works()` is cached per process: one `bwrap … bash -c :`).
    Per generator: each secret file of its dependencies decrypted once per run (clan's `_secret_cache`,
    shared by all generators of the run), `age -d` standing in for `sops decrypt`; its prompts written to
    $prompts; its script run in clan's sandbox (`clan_sandbox`); then per secret file clan's
    `encrypt_secret`: `age-keygen -y` of the admin's key (clan derives the admin's public key from its
    private key on every call, `ensure_admin_public_keys`), the member links (admin, plus every machine
    declaring the generator for a deployed file), one `age --encrypt --armor` to those recipients
    standing in for `sops encrypt`; public files written as `value`; the validation hash once per store
    that changed; then clan's `commit_files`: one `git add -- <path>` per path (each secret file's
    folder, each value, each validation hash), `git diff --cached --exit-code -- <paths>`, and `git commit
    --no-verify -m … -- <paths>`. Before a machine's first deployed secret, clan's `ensure_machine_key`:
    `age-keygen`, then `encrypt_secret` of the private key to the admin into sops/secrets/<m>-age.key
    (`age-keygen -y`, `age -e`, `commit_files` of its admin link and secret: 2 adds, diff, commit), then
    `add_machine`: sops/machines/<m>/key.json and `commit_files` of it (add, diff, commit).
    """

    def __init__(self, repo: Path, fleet: Fleet, admin_public: str, key_file: Path) -> None:
        self.repo = repo
        self.fleet = fleet
        self.admin_public = admin_public
        self.key_file = key_file
        self.identity = key_file.read_bytes()
        self.machine_keys: dict[str, str] = {}
        self.machine_key_seconds = 0.0
        self.processes = 0
        self.prompts: dict[str, dict[str, str]] = {}
        self.secret_cache: dict[Path, bytes] = {}
        self.sandbox_checked = False
        self.machines_of: dict[GeneratorId, list[str]] = {}
        for m in fleet.machines:
            for g in fleet.generators_of(m.name):
                self.machines_of.setdefault(generator_id(g, m.name), []).append(m.name)

    def _run(self, argv: list[str], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        self.processes += 1
        return subprocess.run(argv, check=check, capture_output=True, **kwargs)

    def run(self) -> int:
        done: set[GeneratorId] = set()
        for m in self.fleet.machines:
            generators = {g.name: g for g in self.fleet.generators_of(m.name)}
            order = graphlib.TopologicalSorter({g.name: g.dependencies for g in generators.values()}).static_order()
            for name in order:
                gid = generator_id(generators[name], m.name)
                if gid not in done:
                    self.generator(m.name, gid, generators[name], generators)
                    done.add(gid)
        return len(done)

    def commit_files(self, paths: list[Path], message: str) -> None:
        """clan_lib.git.commit_files: one `git add` per path, a diff of the index, a commit of the paths."""
        git = ["git", "-C", str(self.repo)]
        for path in paths:
            self._run([*git, "add", "--", str(path)])
        rel = [str(p) for p in paths]
        if self._run([*git, "diff", "--cached", "--exit-code", "--", *rel], check=False).returncode == 0:
            return
        self._run([*git, "commit", "-m", message, "--no-verify", "--", *rel])

    def _link(self, secret_dir: Path, kind: str, name: str) -> Path:
        link = secret_dir / kind / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(self.repo / "sops" / kind / name, link.parent), link)
        return link

    def encrypt_secret(self, secret_dir: Path, plaintext: Path, machines: list[str]) -> Path:
        """clan's encrypt_secret: the admin's public key from its private key (`age-keygen -y`), the
        member links, one encryption to all members (sops there, age here). Returns the admin's link."""
        self._run(["age-keygen", "-y"], input=self.identity)
        secret_dir.mkdir(parents=True, exist_ok=True)
        for machine in machines:
            self._link(secret_dir, "machines", machine)
        link = self._link(secret_dir, "users", ADMIN)
        members = [self.admin_public] + [self.machine_keys[m] for m in machines]
        recipients = [arg for key in members for arg in ("-r", key)]
        self._run(["age", "-e", "-a", *recipients, "-o", str(secret_dir / "secret"), str(plaintext)])
        return link

    def machine_key(self, machine: str) -> None:
        """clan's ensure_machine_key: its age key pair, the private half encrypted to the admin and
        committed, then the machine's public key added and committed."""
        start = time.perf_counter()
        secret_dir = self.repo / "sops" / "secrets" / f"{machine}-age.key"
        with tempfile.TemporaryDirectory(dir=RAM_TMP) as tmp:
            private = Path(tmp) / "key.txt"
            self._run(["age-keygen", "-o", str(private)])
            public = next(
                line.split(": ", 1)[1] for line in private.read_text().splitlines() if line.startswith("# public key: ")
            )
            link = self.encrypt_secret(secret_dir, private, [])
        self.commit_files([link, secret_dir / "secret"], f"secrets: update {machine}-age.key")
        member = self.repo / "sops" / "machines" / machine
        member.mkdir(parents=True)
        (member / "key.json").write_bytes(key_json_bytes([KeyEntry(public)]))
        self.commit_files([member], f"secrets: add machine {machine}")
        self.machine_keys[machine] = public
        self.machine_key_seconds += time.perf_counter() - start

    def check_sandbox(self) -> None:
        """clan's sandbox_works(), once per process (functools.cache)."""
        if not self.sandbox_checked:
            self._run(clan_sandbox([], ["bash", "-c", ":"]))
            self.sandbox_checked = True

    def script(self, machine: str, g: Generator, tmp: Path, env: dict[str, str]) -> None:
        """The generator's work: SCRIPTS[name] run by bash in clan's sandbox (clan runs its finalScript,
        a store path, with `bash -c <path>`: one bash more than here)."""
        principals = ",".join(f"{machine}.{d}" for d in sorted(g.validation["domains"])) if g.validation else ""
        env |= {"machine": machine, "principals": principals}
        argv = clan_sandbox([str(tmp)], ["bash", "-c", "set -euo pipefail\n" + SCRIPTS[g.name]])
        self._run(argv, env=env, cwd=tmp)

    def decrypt(self, secret: Path) -> bytes:
        if secret not in self.secret_cache:
            self.secret_cache[secret] = self._run(["age", "-d", "-i", str(self.key_file), str(secret)]).stdout
        return self.secret_cache[secret]

    def generator(self, machine: str, gid: GeneratorId, g: Generator, declared: dict[str, Generator]) -> None:
        final = self.repo / "vars" / gid.rel_dir
        paths: list[Path] = []
        self.check_sandbox()
        with tempfile.TemporaryDirectory(prefix="vars-", dir=RAM_TMP) as tmp_name:
            tmp = Path(tmp_name)
            in_dir, out_dir = tmp / "in", tmp / "out"
            in_dir.mkdir()
            out_dir.mkdir()
            env = {**os.environ, "in": str(in_dir), "out": str(out_dir)}
            for dep_name in g.dependencies:
                dep = declared[dep_name]
                dep_dir = self.repo / "vars" / generator_id(dep, machine).rel_dir
                (in_dir / dep_name).mkdir(parents=True)
                for f in dep.all_files:
                    target = in_dir / dep_name / f.name
                    if f.secret:
                        target.write_bytes(self.decrypt(dep_dir / f.name / "secret"))
                        target.chmod(0o600)  # ssh-keygen refuses a private key others can read
                    else:
                        shutil.copyfile(dep_dir / f.name / "value", target)
            if g.prompts:
                (tmp / "prompts").mkdir()
                env["prompts"] = str(tmp / "prompts")
                for p in g.prompts:
                    (tmp / "prompts" / p.name).write_text(self.prompts[g.name][p.name])
            self.script(machine, g, tmp, env)
            public = secret = False
            for f in g.all_files:
                file_dir = final / f.name
                if f.secret:
                    deploy = self.machines_of[gid] if f.deploy else []
                    for m in deploy:
                        if m not in self.machine_keys:
                            self.machine_key(m)
                    self.encrypt_secret(file_dir, out_dir / f.name, deploy)
                    paths.append(file_dir)
                    secret = True
                else:
                    file_dir.mkdir(parents=True)
                    shutil.copyfile(out_dir / f.name, file_dir / "value")
                    paths.append(file_dir / "value")
                    public = True
        if g.validation_hash is not None:
            (final / ".validation-hash").write_text(g.validation_hash)
            paths += [final / ".validation-hash"] * (public + secret)
        self.commit_files(paths, f"vars: update via generator {g.name} (machine: {machine})")


def clan_way(repo: Path, fleet: Fleet, admin_public: str, key_file: Path) -> ClanWay:
    way = ClanWay(repo, fleet, admin_public, key_file)
    way.run()
    return way


# -- declared in the flake ------------------------------------------------------------------------


def flake_specs(n: int) -> dict[str, Any]:
    """The same generators as `make_fleet`'s, declared in the flake (clan.core.vars.generators of each
    configuration) with SCRIPTS as their scripts; openssh-cert's gets its machine and principals
    written in, as clan's sshd module does (so its finalScript differs per machine). Every fourth
    machine is a darwin one."""
    from tests.vars_flake import FileSpec, GeneratorSpec, MachineSpec

    machines = {}
    for name in make_names(n):
        specs = []
        for g in nixos_vars(name):
            script = SCRIPTS[g.name]
            if g.validation:
                principals = ",".join(f"{name}.{d}" for d in sorted(g.validation["domains"]))
                script = f"machine={name}\nprincipals={principals}\n{script}"
            files = tuple(FileSpec(f.name, f.secret, f.deploy, f.needed_for, f.owner, f.group, f.mode) for f in g.files)
            specs.append(GeneratorSpec(g.name, files, (), g.dependencies, g.share, g.validation, script))
        darwin = int(name[1:]) % 4 == 3
        machines[name] = MachineSpec("darwin" if darwin else "nixos", tuple(specs))
    return machines


def make_names(n: int) -> list[str]:
    return [f"m{i:03d}" for i in range(n)]


def flake_fleet(specs: dict[str, Any]) -> Fleet:
    """The stack's side: the machines alone, every generator comes from the flake."""
    return Fleet(
        name="bench",
        domain=DOMAIN,
        machines=tuple(Machine(name=m, machine_class=s.machine_class) for m, s in specs.items()),
    )


def declared(fleet: Fleet, ref: str, cache_home: Path) -> Fleet:
    """The fleet with the flake's generators, evaluated or from the cache in `cache_home`."""
    classes = {m.name: m.machine_class for m in fleet.machines}
    return with_flake_generators(fleet, flake_generators(LOCAL, ref, classes, cache_home=cache_home))


def ours_flake(repo: Path, fleet: Fleet, ref: str, cache_home: Path, identity: str) -> int:
    """What `fleet vars generate` does with the stack's flake, as a fresh process: the flake's
    generators (from the cache when warm), then generate, realising each finalScript once."""
    execute._realised.clear()  # a new process has realised nothing yet
    return ours(repo, declared(fleet, ref, cache_home), identity)


class FlakeClanWay(ClanWay):
    """The clan way for generators declared in the flake: each one's realised finalScript run as clan
    does, `bash -c <store path>` in clan's sandbox (clan's finalScripts are built by its evaluation; not
    timed here, as the evaluation itself). `prompts` are the prompts' values by generator, as clan's
    `run_generators(prompt_values=…)` takes them."""

    def __init__(self, *args: Any, scripts: dict[str, str], prompts: dict[str, dict[str, str]] | None = None) -> None:
        super().__init__(*args)
        self.scripts = scripts
        self.prompts = prompts or {}

    @override
    def script(self, machine: str, g: Generator, tmp: Path, env: dict[str, str]) -> None:
        assert g.final_script is not None
        self._run(clan_sandbox([str(tmp)], ["bash", "-c", self.scripts[g.final_script]]), env=env, cwd=tmp)


def final_scripts(fleet: Fleet) -> dict[str, str]:
    """Every finalScript derivation of the fleet -> its realised store path."""
    drvs = {g.final_script for m in fleet.machines for g in fleet.generators_of(m) if g.final_script}
    return {drv: nix.realise(LOCAL, drv) for drv in sorted(drvs)}


# -- measuring ------------------------------------------------------------------------------------


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()  # garbage of the previous run is not charged to this one
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def check_requirements() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise RuntimeError(
            f"missing tools: {', '.join(missing)} "
            "(Debian packages age, openssh-client, openssl, git, nix-bin, bubblewrap)"
        )


def keyed_machines(fleet: Fleet) -> int:
    """The machines getting an age key: those a deployed secret goes to (one of their generators')."""
    return sum(
        any(f.secret and f.deploy for g in fleet.generators_of(m.name) for f in g.all_files) for m in fleet.machines
    )


def expected_commits(fleet: Fleet) -> int:
    """The clan way's commits: one per generator, two per machine key (its secret, the machine)."""
    return len(select(fleet, lambda _: False)) + 2 * keyed_machines(fleet)


def clan_commits(repo: Path) -> int:
    argv = ["git", "-C", str(repo), "rev-list", "--count", "HEAD"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return int(done.stdout.strip() or 0)


class FlakeBench:
    """A flake's generators, one round at a time: ours with a warm evaluation cache and with an empty
    one, the clan way, the evaluation alone (what the clan way adds when its cache is cold) and the
    generators' own work. `prefix` names its results; `prompts` are the prompts' values by generator
    (ours reads them from FLEET_PROMPT_<GENERATOR>_<PROMPT>, as `fleet vars generate` does)."""

    def __init__(
        self,
        root: Path,
        specs: dict[str, Any],
        keys: tuple[str, str, Path],
        prefix: str = "flake",
        prompts: dict[str, dict[str, str]] | None = None,
    ) -> None:
        from fleet_sdk.vars.prompts import env_name
        from tests.vars_flake import write_vars_flake

        self.root = root / prefix
        self.identity, self.public, self.key_file = keys
        self.prefix, self.prompts = prefix, prompts or {}
        for generator, values in self.prompts.items():
            for prompt, value in values.items():
                os.environ[env_name(generator, prompt)] = value
        self.ref = write_vars_flake(self.root / "flake", specs)
        self.fleet = flake_fleet(specs)
        self.warm_cache = self.root / "cache-warm"
        merged = declared(self.fleet, self.ref, self.warm_cache)  # fills the warm cache
        self.merged = merged
        self.generators = len(select(merged, lambda _: False))
        self.commits = expected_commits(merged)
        self.files = expected_files(merged)
        self.scripts = final_scripts(merged)  # every finalScript realised, as after clan's evaluation
        self.count = 0
        self.best = dict.fromkeys(("ours", "cold", "clan", "eval", "own"), float("inf"))
        self.processes = 0

    def fresh(self, name: str) -> Path:
        self.count += 1
        return self.root / f"{name}-{self.count}"

    def ours(self, cache: Path) -> float:
        repo = make_repo(self.fresh("ours"), self.public)
        seconds, done = _timed(lambda: ours_flake(repo, self.fleet, self.ref, cache, self.identity))
        if done != self.generators or stored_files(repo) != self.files:
            raise AssertionError(f"ours ({self.prefix}): {done} generators and {stored_files(repo)} files")
        return seconds

    def round(self) -> None:
        self.best["ours"] = min(self.best["ours"], self.ours(self.warm_cache))
        self.best["cold"] = min(self.best["cold"], self.ours(self.fresh("cache")))
        repo = make_repo(self.fresh("clan"), self.public)
        way = FlakeClanWay(repo, self.merged, self.public, self.key_file, scripts=self.scripts, prompts=self.prompts)
        seconds, _ = _timed(way.run)
        if clan_commits(repo) != self.commits or stored_files(repo) != self.files:
            raise AssertionError(
                f"clan way ({self.prefix}): {clan_commits(repo)} commits and {stored_files(repo)} files, "
                f"not {self.commits}, {self.files}"
            )
        if seconds < self.best["clan"]:
            self.best["clan"], self.processes = seconds, way.processes
        cache = self.fresh("cache")
        seconds, _ = _timed(lambda: declared(self.fleet, self.ref, cache))
        self.best["eval"] = min(self.best["eval"], seconds)
        seconds, done = _timed(lambda: own_work(self.merged, self.prompts))  # finalScripts realised before
        if done != self.generators:
            raise AssertionError(f"own work ({self.prefix}): {done} generators run, not {self.generators}")
        self.best["own"] = min(self.best["own"], seconds)

    def result(self) -> dict[str, Any]:
        b, p = self.best, self.prefix
        return {
            f"{p}_machines": len(self.fleet.machines),
            f"{p}_generators": self.generators,
            f"{p}_files": self.files,
            f"{p}_scripts": len(self.scripts),
            f"{p}_ours_s": b["ours"],
            f"{p}_ours_cold_s": b["cold"],
            f"{p}_clan_s": b["clan"],
            f"{p}_eval_s": b["eval"],
            f"{p}_own_s": b["own"],
            f"{p}_ceiling": b["clan"] / b["own"],
            f"{p}_clan_processes": self.processes,
            f"{p}_ratio": b["clan"] / b["ours"],
            f"{p}_cold_ratio": (b["clan"] + b["eval"]) / b["cold"],
        }


def measure(n: int = N, rounds: int = ROUNDS) -> dict[str, Any]:
    """Seconds for n machines each way (best of `rounds`), the ratio clan way / ours and our overhead."""
    check_requirements()
    os.environ["NIX_CONFIG"] = nix_env()["NIX_CONFIG"]  # no substituters, no sandbox: the test machine's Nix
    fleet = make_fleet(n)
    generators = len(select(fleet, lambda _: False))
    files = expected_files(fleet)
    identity, public = sops.generate()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key_file = root / "admin.txt"
        key_file.write_text(identity + "\n")
        count = 0

        def fresh(name: str) -> Path:
            nonlocal count
            count += 1
            return make_repo(root / f"{name}-{count}", public)

        # Warm-up: imports, the word list, the tools in the page cache.
        warm = make_fleet(2)
        ours(fresh("warm-ours"), warm, identity)
        own_work(warm)
        clan_way(fresh("warm-clan"), warm, public, key_file)
        from bench.vars_flake_shapes import acceptance_specs, prompts

        keys = (identity, public, key_file)
        flake = FlakeBench(root, flake_specs(n), keys)
        acceptance = FlakeBench(root, acceptance_specs(n), keys, "acceptance", prompts())
        commits = expected_commits(fleet)
        best = {"ours": float("inf"), "own": float("inf"), "clan": float("inf")}
        machine_keys = 0.0
        processes = 0
        for _ in range(rounds):
            # Interleaved, so a slow spell of the machine hits every way.
            repo = fresh("ours")
            seconds, done = _timed(functools.partial(ours, repo, fleet, identity))
            if done != generators or stored_files(repo) != files:
                raise AssertionError(
                    f"ours: {done} generators and {stored_files(repo)} files, not {generators}, {files}"
                )
            best["ours"] = min(best["ours"], seconds)

            seconds, done = _timed(lambda: own_work(fleet))
            if done != generators:
                raise AssertionError(f"own work: {done} generators run, not {generators}")
            best["own"] = min(best["own"], seconds)

            repo = fresh("clan")
            seconds, way = _timed(functools.partial(clan_way, repo, fleet, public, key_file))
            if clan_commits(repo) != commits or stored_files(repo) != files:
                raise AssertionError(f"clan way: {clan_commits(repo)} commits and {stored_files(repo)} files")
            if seconds < best["clan"]:
                best["clan"], machine_keys, processes = seconds, way.machine_key_seconds, way.processes
            flake.round()
            acceptance.round()
    overhead = best["ours"] - best["own"]
    return {
        "machines": n,
        "generators": generators,
        "files": files,
        "rounds": rounds,
        "jobs": JOBS,
        "ours_s": best["ours"],
        "own_s": best["own"],
        "clan_s": best["clan"],
        "clan_machine_keys_s": machine_keys,
        "clan_processes": processes,
        "ratio": best["clan"] / best["ours"],
        "ceiling": best["clan"] / best["own"],
        "overhead_s": overhead,
        "overhead_share": overhead / best["ours"],
        **flake.result(),
        **acceptance.result(),
    }


def format_result(r: dict[str, Any]) -> str:
    g = r["generators"]

    def ms(seconds: float) -> float:
        return float(seconds * 1000 / g)

    rows = [
        (f"ours: fleet_sdk.vars.generate ({r['jobs']} jobs)", r["ours_s"], f"{r['ratio']:.1f}x"),
        (f"clan way: {r['clan_processes']} processes, sequential", r["clan_s"], "1.0x"),
        (f"  of which machine age keys ({r['machines']})", r["clan_machine_keys_s"], ""),
        (f"generators' own work: run_generator only ({r['jobs']} jobs)", r["own_s"], ""),
    ]
    lines = [
        f"vars generate: {r['machines']} machines, {g} generators, {r['files']} files "
        f"(best of {r['rounds']}, same run, interleaved)",
        f"  {'way':<58} {'total s':>8} {'ms/generator':>13} {'speed-up':>9}",
    ]
    lines += [f"  {way:<58} {s:>8.2f} {ms(s):>13.2f} {x:>9}" for way, s, x in rows]
    lines.append(f"  ratio clan way / ours: {r['ratio']:.1f}x")
    # With no overhead at all ours would take the own work's time: the most ours can reach while the
    # generators themselves stay as they are.
    lines.append(f"  ratio clan way / generators' own work (ours with zero overhead): {r['ceiling']:.1f}x")
    lines.append(
        f"  our overhead beyond the generators' own work: {ms(r['overhead_s']):.2f} ms/generator "
        f"({r['overhead_share']:.0%} of ours)"
    )
    return "\n".join(lines + format_flake(r) + format_flake(r, "acceptance"))


def format_flake(r: dict[str, Any], p: str = "flake") -> list[str]:
    g = r[f"{p}_generators"]
    rows = [
        ("ours: flake generators, warm evaluation cache", r[f"{p}_ours_s"], f"{r[f'{p}_ratio']:.1f}x"),
        ("ours: flake generators, first evaluation", r[f"{p}_ours_cold_s"], f"{r[f'{p}_cold_ratio']:.1f}x"),
        (f"clan way: {r[f'{p}_clan_processes']} processes, sequential", r[f"{p}_clan_s"], "1.0x"),
        ("the evaluation alone (the clan way's, cold)", r[f"{p}_eval_s"], ""),
        (f"generators' own work: run_generator only ({r['jobs']} jobs)", r[f"{p}_own_s"], ""),
    ]
    title = {
        "flake": f"declared in the flake: the same {g} generators",
        "acceptance": f"the acceptance test flake's generators on {r[f'{p}_machines']} machines: {g} generators",
    }[p]
    lines = [
        f"{title}, {r[f'{p}_files']} files, {r[f'{p}_scripts']} finalScripts (best of {r['rounds']}, same run)",
        f"  {'way':<58} {'total s':>8} {'ms/generator':>13} {'speed-up':>9}",
    ]
    lines += [f"  {way:<58} {s:>8.2f} {s * 1000 / g:>13.2f} {x:>9}" for way, s, x in rows]
    lines.append(f"  ratio clan way / ours, warm evaluation cache: {r[f'{p}_ratio']:.1f}x")
    lines.append(f"  ratio clan way / ours, first evaluation (both evaluate once): {r[f'{p}_cold_ratio']:.1f}x")
    lines.append(f"  ratio clan way / generators' own work (ours with zero overhead): {r[f'{p}_ceiling']:.1f}x")
    return lines


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else N
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else ROUNDS
    print(format_result(measure(n, rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
