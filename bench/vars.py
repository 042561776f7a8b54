"""`fleet vars generate` for 100 machines against the clan way (one process per step), in one run.

Every machine declares the prod stack's vars (stacks/prod.py `nixos_vars`): openssh, openssh-ca
(shared), openssh-cert for the search domain "zt", root's generated password, emergency access, the
state version and the deploy key (shared): 5 generators per machine plus 2 shared ones.

Ours: `fleet_sdk.vars.generate.generate(repo, fleet, GenerateOptions(identities=[admin]))` on a fresh
git repository with the admin user registered, as `fleet vars generate` runs it (its default jobs).
Clan way, done for real with the same tools, one generator after the other as clan runs them: for
every generator of every machine, the secret inputs decrypted by one `age --decrypt` each, one bash
process running the generator's work as a script (ssh-keygen for keys and the certificate, a
passphrase from /dev/urandom, `openssl passwd -6 -stdin` for hashes), one `age --encrypt --armor`
per secret file (sops runs once per file in clan) to the same recipients (admin, plus the machine
for deployed files) with clan's member links, the public files as `value`, then one `git add` and
one `git commit` per generator ("vars: update via generator <name> (machine: <m>)"). Each machine's
age key is made as clan does before its first secret: `age-keygen`, then `age --encrypt` of the
private key to the admin into sops/secrets/<m>-age.key (ours makes and encrypts it too). It is a
lower bound of clan: no Nix evaluation, no sops (its JSON, MAC and bigger binary), no xkcdpass.
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
sandbox (bubblewrap). Clan way: as above, but one bash process running the realised finalScript
instead of SCRIPTS; its finalScripts are realised before (clan's evaluation builds them) and its
evaluation is not counted when warm; when cold it is counted as one evaluation by ours (a lower bound
of clan's). Own work: `run_generator` of each flake generator, its finalScript realised already.
Unlike the built-ins (Python functions, run in-process), every flake generator is a sandboxed process
with the tools it starts, on both sides, so the generators' own work bounds the ratio: clan way / own
work is the most any engine running the same scripts in the same sandbox can reach.

The ways run in the same process and run, interleaved; only the ratios are meaningful, never a bare
time on its own.

    python bench/vars.py [MACHINES] [ROUNDS]
"""

from __future__ import annotations

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
# Best of 2 rounds, interleaved: one round of all the ways takes ~80 s on 2 cores (~30 s the built-ins,
# ~50 s the flake's), so the whole benchmark takes about 3 min; the minimum is the least noisy estimate
# on a shared machine.
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


def own_work(fleet: Fleet) -> int:
    """Every generator run by `run_generator` alone, dependencies first, JOBS at a time; the
    dependencies' outputs are passed from memory."""
    nodes = select(fleet, lambda n: False)
    outputs: dict[GeneratorId, dict[str, bytes]] = {}
    pending = {n.gid: n for n in nodes}
    waiting = {n.gid: set(n.deps) for n in nodes}

    def work(node: Node) -> dict[str, bytes]:
        inputs = {dep.name: outputs[dep] for dep in node.deps}
        return run_generator(node.gid, node.generator, inputs, {})

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


class ClanWay:
    """One generator after the other, every step its own process, as clan runs `vars generate`."""

    def __init__(self, repo: Path, fleet: Fleet, admin_public: str, key_file: Path) -> None:
        self.repo = repo
        self.fleet = fleet
        self.admin_public = admin_public
        self.key_file = key_file
        self.machine_keys: dict[str, str] = {}
        self.machine_key_seconds = 0.0
        self.processes = 0

    def _run(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        self.processes += 1
        return subprocess.run(argv, check=True, capture_output=True, **kwargs)

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

    def _link(self, secret_dir: Path, kind: str, name: str) -> None:
        link = secret_dir / kind / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(self.repo / "sops" / kind / name, link.parent), link)

    def machine_key(self, machine: str) -> list[Path]:
        """clan's first secret for a machine: its age key pair, the private half encrypted to the admin."""
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=RAM_TMP) as tmp:
            private = Path(tmp) / "key.txt"
            self._run(["age-keygen", "-o", str(private)])
            public = next(
                line.split(": ", 1)[1] for line in private.read_text().splitlines() if line.startswith("# public key: ")
            )
            secret_dir = self.repo / "sops" / "secrets" / f"{machine}-age.key"
            secret_dir.mkdir(parents=True)
            self._run(["age", "-e", "-a", "-r", self.admin_public, "-o", str(secret_dir / "secret"), str(private)])
        self._link(secret_dir, "users", ADMIN)
        member = self.repo / "sops" / "machines" / machine
        member.mkdir(parents=True)
        (member / "key.json").write_bytes(key_json_bytes([KeyEntry(public)]))
        self.machine_keys[machine] = public
        self.machine_key_seconds += time.perf_counter() - start
        return [secret_dir, member]

    def script(self, machine: str, g: Generator, tmp: Path) -> None:
        """The generator's work: one bash process (with the tools it starts)."""
        principals = ",".join(f"{machine}.{d}" for d in sorted(g.validation["domains"])) if g.validation else ""
        env = {**os.environ, "in": f"{tmp}/in", "out": f"{tmp}/out", "machine": machine, "principals": principals}
        self._run(["bash", "-c", "set -euo pipefail\n" + SCRIPTS[g.name]], env=env, cwd=tmp)

    def generator(self, machine: str, gid: GeneratorId, g: Generator, declared: dict[str, Generator]) -> None:
        added: list[Path] = []
        deployed = any(f.secret and f.deploy for f in g.all_files)
        if deployed and machine not in self.machine_keys:
            added += self.machine_key(machine)
        final = self.repo / "vars" / gid.rel_dir
        with tempfile.TemporaryDirectory(dir=RAM_TMP) as tmp:
            in_dir, out_dir = Path(tmp) / "in", Path(tmp) / "out"
            out_dir.mkdir()
            for dep_name in g.dependencies:
                dep = declared[dep_name]
                dep_dir = self.repo / "vars" / generator_id(dep, machine).rel_dir
                (in_dir / dep_name).mkdir(parents=True)
                for f in dep.all_files:
                    target = in_dir / dep_name / f.name
                    if f.secret:
                        opened = self._run(["age", "-d", "-i", str(self.key_file), str(dep_dir / f.name / "secret")])
                        target.write_bytes(opened.stdout)
                        target.chmod(0o600)
                    else:
                        shutil.copyfile(dep_dir / f.name / "value", target)
            self.script(machine, g, Path(tmp))
            for f in g.all_files:
                file_dir = final / f.name
                file_dir.mkdir(parents=True)
                if f.secret:
                    members = [self.admin_public] + ([self.machine_keys[machine]] if f.deploy else [])
                    recipients = [arg for key in members for arg in ("-r", key)]
                    self._run(["age", "-e", "-a", *recipients, "-o", str(file_dir / "secret"), str(out_dir / f.name)])
                    self._link(file_dir, "users", ADMIN)
                    if f.deploy:
                        self._link(file_dir, "machines", machine)
                else:
                    shutil.copyfile(out_dir / f.name, file_dir / "value")
        if g.validation_hash is not None:
            (final / ".validation-hash").write_text(g.validation_hash)
        added.append(final)
        git = ["git", "-C", str(self.repo)]
        self._run([*git, "add", "--", *(str(p.relative_to(self.repo)) for p in added)])
        message = f"vars: update via generator {g.name} (machine: {machine})"
        self._run([*git, "commit", "-q", "--no-verify", "-m", message])


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
    """The clan way for generators declared in the flake: each one's realised finalScript run by bash
    (clan's finalScripts are built by its evaluation; not timed here, as the evaluation itself)."""

    def __init__(self, *args: Any, scripts: dict[str, str]) -> None:
        super().__init__(*args)
        self.scripts = scripts

    def script(self, machine: str, g: Generator, tmp: Path) -> None:
        (tmp / "prompts").mkdir()
        env = {**os.environ, "in": f"{tmp}/in", "out": f"{tmp}/out", "prompts": f"{tmp}/prompts"}
        assert g.final_script is not None
        self._run(["bash", "-c", self.scripts[g.final_script]], env=env, cwd=tmp)


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


def check_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise RuntimeError(
            f"missing tools: {', '.join(missing)} "
            "(Debian packages age, openssh-client, openssl, git, nix-bin, bubblewrap)"
        )


def clan_commits(repo: Path) -> int:
    argv = ["git", "-C", str(repo), "rev-list", "--count", "HEAD"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return int(done.stdout.strip() or 0)


class FlakeBench:
    """The flake path, one round at a time: ours with a warm evaluation cache and with an empty one,
    the clan way, and the evaluation alone (what the clan way adds when its cache is cold)."""

    def __init__(self, root: Path, n: int, identity: str, public: str, key_file: Path) -> None:
        from tests.vars_flake import write_vars_flake

        self.root, self.identity, self.public, self.key_file = root, identity, public, key_file
        specs = flake_specs(n)
        self.ref = write_vars_flake(root / "flake", specs)
        self.fleet = flake_fleet(specs)
        self.warm_cache = root / "cache-warm"
        merged = declared(self.fleet, self.ref, self.warm_cache)  # fills the warm cache
        self.merged = merged
        self.generators = len(select(merged, lambda _: False))
        self.files = expected_files(merged)
        self.scripts = final_scripts(merged)  # every finalScript realised, as after clan's evaluation
        self.count = 0
        self.best = dict.fromkeys(("ours", "cold", "clan", "eval", "own"), float("inf"))
        self.processes = 0

    def fresh(self, name: str) -> Path:
        self.count += 1
        return self.root / f"flake-{name}-{self.count}"

    def ours(self, cache: Path) -> float:
        repo = make_repo(self.fresh("ours"), self.public)
        seconds, done = _timed(lambda: ours_flake(repo, self.fleet, self.ref, cache, self.identity))
        if done != self.generators or stored_files(repo) != self.files:
            raise AssertionError(f"ours (flake): {done} generators and {stored_files(repo)} files")
        return seconds

    def round(self) -> None:
        self.best["ours"] = min(self.best["ours"], self.ours(self.warm_cache))
        self.best["cold"] = min(self.best["cold"], self.ours(self.fresh("cache")))
        repo = make_repo(self.fresh("clan"), self.public)
        way = FlakeClanWay(repo, self.merged, self.public, self.key_file, scripts=self.scripts)
        seconds, _ = _timed(way.run)
        if clan_commits(repo) != self.generators or stored_files(repo) != self.files:
            raise AssertionError(f"clan way (flake): {clan_commits(repo)} commits and {stored_files(repo)} files")
        if seconds < self.best["clan"]:
            self.best["clan"], self.processes = seconds, way.processes
        cache = self.fresh("cache")
        seconds, _ = _timed(lambda: declared(self.fleet, self.ref, cache))
        self.best["eval"] = min(self.best["eval"], seconds)
        seconds, done = _timed(lambda: own_work(self.merged))  # finalScripts realised by the runs before
        if done != self.generators:
            raise AssertionError(f"own work (flake): {done} generators run, not {self.generators}")
        self.best["own"] = min(self.best["own"], seconds)

    def result(self) -> dict[str, Any]:
        b = self.best
        return {
            "flake_generators": self.generators,
            "flake_files": self.files,
            "flake_scripts": len(self.scripts),
            "flake_ours_s": b["ours"],
            "flake_ours_cold_s": b["cold"],
            "flake_clan_s": b["clan"],
            "flake_eval_s": b["eval"],
            "flake_own_s": b["own"],
            "flake_ceiling": b["clan"] / b["own"],
            "flake_clan_processes": self.processes,
            "flake_ratio": b["clan"] / b["ours"],
            "flake_cold_ratio": (b["clan"] + b["eval"]) / b["cold"],
        }


def measure(n: int = N, rounds: int = ROUNDS) -> dict[str, Any]:
    """Seconds for n machines each way (best of `rounds`), the ratio clan way / ours and our overhead."""
    check_tools()
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
        flake = FlakeBench(root, n, identity, public, key_file)
        best = {"ours": float("inf"), "own": float("inf"), "clan": float("inf")}
        machine_keys = 0.0
        processes = 0
        for _ in range(rounds):
            # Interleaved, so a slow spell of the machine hits every way.
            repo = fresh("ours")
            seconds, done = _timed(lambda repo=repo: ours(repo, fleet, identity))
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
            seconds, way = _timed(lambda repo=repo: clan_way(repo, fleet, public, key_file))
            commits = clan_commits(repo)
            if commits != generators or stored_files(repo) != files:
                raise AssertionError(f"clan way: {commits} commits and {stored_files(repo)} files")
            if seconds < best["clan"]:
                best["clan"], machine_keys, processes = seconds, way.machine_key_seconds, way.processes
            flake.round()
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
    }


def format_result(r: dict[str, Any]) -> str:
    g = r["generators"]

    def ms(seconds: float) -> float:
        return seconds * 1000 / g

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
    return "\n".join(lines + format_flake(r))


def format_flake(r: dict[str, Any]) -> list[str]:
    g = r["flake_generators"]
    rows = [
        ("ours: flake generators, warm evaluation cache", r["flake_ours_s"], f"{r['flake_ratio']:.1f}x"),
        ("ours: flake generators, first evaluation", r["flake_ours_cold_s"], f"{r['flake_cold_ratio']:.1f}x"),
        (f"clan way: {r['flake_clan_processes']} processes, sequential", r["flake_clan_s"], "1.0x"),
        ("the evaluation alone (the clan way's, cold)", r["flake_eval_s"], ""),
        (f"generators' own work: run_generator only ({r['jobs']} jobs)", r["flake_own_s"], ""),
    ]
    lines = [
        f"declared in the flake: the same {g} generators, {r['flake_files']} files, "
        f"{r['flake_scripts']} finalScripts (best of {r['rounds']}, same run)",
        f"  {'way':<58} {'total s':>8} {'ms/generator':>13} {'speed-up':>9}",
    ]
    lines += [f"  {way:<58} {s:>8.2f} {s * 1000 / g:>13.2f} {x:>9}" for way, s, x in rows]
    lines.append(f"  ratio clan way / ours, warm evaluation cache: {r['flake_ratio']:.1f}x")
    lines.append(f"  ratio clan way / ours, first evaluation (both evaluate once): {r['flake_cold_ratio']:.1f}x")
    lines.append(f"  ratio clan way / generators' own work (ours with zero overhead): {r['flake_ceiling']:.1f}x")
    return lines


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else N
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else ROUNDS
    print(format_result(measure(n, rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
