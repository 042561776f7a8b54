"""The closure probe (fleet_sdk.deploy.probe): every machine's toplevel from one `nix eval`, cached by the
flake's source fingerprint. The integration tests run the real nix on FakeFlake's fake systems and
count the processes with a RecordingRunner delegating to LOCAL; the others script the runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_sdk.deploy import flakesource, sources
from fleet_sdk.deploy.probe import Closure, Unknown, probe_closures, probe_enabled
from fleet_sdk.errors import ClosureProbeError, CommandError, ConfigError, DeployError, NixError
from fleet_sdk.testing import FakeFlake, FakeSystem, RecordingRunner, nix_env
from fleet_sdk.tools.runner import LOCAL

from .tools import require

DRV = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-web1.drv"
OUT = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-web1"


def nix_calls(runner: RecordingRunner) -> list[list[str]]:
    return [argv for argv in runner.argvs if argv[0] == "nix"]


def flake_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    return root


# ---- which flakes are here (no nix) ----


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("github:cameronraysmith/vanixiets", "is not on this machine"),
        ("git+https://example.com/fleet.git", "is not on this machine"),
        ("nixpkgs", "is not on this machine"),  # a registry name
        ("flake:nixpkgs", "is not on this machine"),
        ("path:/nonexistent/fleet", "no flake.nix in /nonexistent/fleet"),
        ("/srv/fleet#nixosConfigurations", "names an attribute"),
        ("path:/srv/fleet?rev=abc&dir=x", "has parameters (rev) the probe does not follow"),
    ],
)
def test_a_flake_not_here_is_unknown_with_the_reason_and_runs_nothing(ref: str, words: str, tmp_path: Path) -> None:
    runner = RecordingRunner()
    found = probe_closures(runner, ref, {"web1": "nixos", "mac": "darwin"}, cache_home=tmp_path)
    assert set(found) == {"web1", "mac"}
    for m, probed in found.items():
        assert isinstance(probed, Unknown) and probed.machine == m and words in probed.reason
        assert probed.trigger is None and probed.to_json() == {"unknown": probed.reason}
    assert runner.calls == []


def test_local_references_and_their_kinds(tmp_path: Path) -> None:
    folder = flake_folder(tmp_path / "fleet")
    flake_folder(folder / "sub")
    plain = flakesource.locate(str(folder))
    assert plain == flakesource.FlakeSource(str(folder), folder, "path")
    assert flakesource.locate("./fleet", base=tmp_path) == plain
    assert flakesource.locate(f"path:{folder}?dir=sub") == flakesource.FlakeSource(
        f"path:{folder}?dir=sub", folder / "sub", "path"
    )
    assert flakesource.locate(f"git+file://{folder}") == flakesource.FlakeSource(f"git+file://{folder}", folder, "git")
    (folder / ".git").mkdir()  # as nix: a bare path in a work tree is a git flake
    assert flakesource.locate(str(folder / "sub")) == flakesource.FlakeSource(
        str(folder / "sub"), folder / "sub", "git"
    )
    assert flakesource.locate(f"path:{folder}").kind == "path"  # path: copies every file, git or not


def test_the_probe_setting() -> None:
    assert probe_enabled({}) is True
    assert probe_enabled({"fleet:closureProbe": "false"}) is False
    assert probe_enabled({"fleet:closureProbe": " True "}) is True
    with pytest.raises(ConfigError, match="fleet:closureProbe: expected true or false, got 'off'"):
        probe_enabled({"fleet:closureProbe": "off"})


def test_the_results() -> None:
    closure = Closure("web1", DRV, OUT)
    assert closure.to_json() == {"drvPath": DRV, "outPath": OUT} and closure.trigger == OUT
    unknown = Unknown("web1", "probe off", "ab12")
    assert unknown.to_json() == {"unknown": "probe off", "fingerprint": "ab12"} and unknown.trigger == "source:ab12"


# ---- evaluation and cache, with a scripted runner ----


def scripted_probe(tmp_path: Path, runner: RecordingRunner, machines: dict | None = None) -> dict:
    folder = tmp_path / "fleet" if (tmp_path / "fleet").exists() else flake_folder(tmp_path / "fleet")
    return probe_closures(runner, f"path:{folder}", machines or {"web1": "nixos"}, cache_home=tmp_path / "cache")


def test_one_eval_for_all_machines_then_the_cache(tmp_path: Path) -> None:
    value = {"web1": {"drv": DRV, "out": OUT}, "mac": {"drv": DRV + "x", "out": OUT + "x"}}
    runner = RecordingRunner().reply(stdout=json.dumps(value).encode())
    found = scripted_probe(tmp_path, runner, {"web1": "nixos", "mac": "darwin"})
    assert found == {"web1": Closure("web1", DRV, OUT), "mac": Closure("mac", DRV + "x", OUT + "x")}
    [argv] = runner.argvs
    apply = argv[argv.index("--apply") + 1]
    assert '{ "web1" = "nixos"; "mac" = "darwin"; }' in apply
    assert argv[argv.index("--override-input") + 2] == f"path:{tmp_path / 'fleet'}"
    [cache] = (tmp_path / "cache" / "fleet" / "closures").glob("*.json")
    entries = json.loads(cache.read_text())["machines"]
    assert entries["mac"] == {"attr": 'darwinConfigurations."mac".system', "drvPath": DRV + "x", "outPath": OUT + "x"}
    again = RecordingRunner()
    assert scripted_probe(tmp_path, again, {"mac": "darwin", "web1": "nixos"}) == found
    assert again.calls == []
    # a machine now of the other class, or one not asked before: only it is evaluated
    more = RecordingRunner().reply(stdout=json.dumps({"web1": {"drv": DRV, "out": OUT + "d"}}).encode())
    assert scripted_probe(tmp_path, more, {"web1": "darwin", "mac": "darwin"})["web1"].out_path == OUT + "d"
    assert '{ "web1" = "darwin"; }' in more.argvs[0][more.argvs[0].index("--apply") + 1]


def test_an_unreadable_cache_is_an_empty_one(tmp_path: Path) -> None:
    scripted_probe(tmp_path, RecordingRunner().reply(stdout=json.dumps({"web1": {"drv": DRV, "out": OUT}}).encode()))
    [cache] = (tmp_path / "cache" / "fleet" / "closures").glob("*.json")
    cache.write_text("{not json")
    runner = RecordingRunner().reply(stdout=json.dumps({"web1": {"drv": DRV, "out": OUT}}).encode())
    assert scripted_probe(tmp_path, runner) == {"web1": Closure("web1", DRV, OUT)}
    assert len(runner.calls) == 1 and json.loads(cache.read_text())["machines"]["web1"]["outPath"] == OUT


def test_without_nix_the_systems_are_unknown(tmp_path: Path) -> None:
    runner = RecordingRunner().fail(CommandError(["nix"], 127, b""))
    [probed] = scripted_probe(tmp_path, runner).values()
    assert isinstance(probed, Unknown) and "nix is not installed" in probed.reason


def test_a_timeout_is_a_nix_error(tmp_path: Path) -> None:
    runner = RecordingRunner().fail(CommandError(["nix"], None, b""))
    with pytest.raises(NixError, match="evaluating the systems of web1, mac in .*: timed out after 1800 s"):
        scripted_probe(tmp_path, runner, {"web1": "nixos", "mac": "darwin"})
    assert len(runner.calls) == 1


def test_a_failed_eval_is_retried_per_machine_to_name_the_failing_ones(tmp_path: Path) -> None:
    stderr = b"warning: not writing modified lock file\nerror: boom\n(use '--show-trace' to show detailed location)\n"
    runner = (
        RecordingRunner()
        .reply(returncode=1, stderr=stderr)
        .reply(stdout=json.dumps({"web1": {"drv": DRV, "out": OUT}}).encode())
        .reply(returncode=1, stderr=stderr)
        .reply(returncode=1, stderr=stderr)
    )
    with pytest.raises(ClosureProbeError) as info:
        scripted_probe(tmp_path, runner, {"web1": "nixos", "web2": "nixos", "web3": "nixos"})
    assert info.value.machine == "web2" and info.value.failures == {"web2": "boom", "web3": "boom"}
    assert str(info.value).startswith("machines web2, web3: their systems do not evaluate:\n  boom\nfix the config")
    assert len(runner.calls) == 4 and runner.pending == 0
    # what did evaluate is cached
    assert scripted_probe(tmp_path, RecordingRunner(), {"web1": "nixos"}) == {"web1": Closure("web1", DRV, OUT)}


def test_the_error_groups_machines_by_message() -> None:
    error = ClosureProbeError({"a": "x\n\n  at y", "b": "z"}, "/srv/fleet")
    assert str(error) == (
        "machine a: its system does not evaluate:\n  x\n\n    at y\nmachine b: its system does not evaluate:\n  z\n"
        "fix the configuration in the flake /srv/fleet; `nix eval --show-trace` of the machine's toplevel shows "
        "the whole trace"
    )


def test_probe_off_gives_the_source_fingerprint_without_evaluating(tmp_path: Path) -> None:
    folder = flake_folder(tmp_path / "fleet")
    runner = RecordingRunner()
    off = probe_closures(runner, str(folder), {"web1": "nixos"}, enabled=False, cache_home=tmp_path)
    assert runner.calls == [] and isinstance(off["web1"], Unknown)
    assert "fleet:closureProbe is false" in off["web1"].reason and off["web1"].fingerprint
    same = probe_closures(runner, str(folder), {"web1": "nixos"}, enabled=False, cache_home=tmp_path)
    assert same == off
    (folder / "module.nix").write_text("{ }\n")
    changed = probe_closures(runner, str(folder), {"web1": "nixos"}, enabled=False, cache_home=tmp_path)
    assert changed["web1"].trigger != off["web1"].trigger


def test_without_git_a_work_tree_is_unknown(tmp_path: Path) -> None:
    folder = flake_folder(tmp_path / "fleet")
    (folder / ".git").mkdir()
    runner = RecordingRunner().fail(CommandError(["git"], 127, b""))
    [probed] = probe_closures(runner, str(folder), {"web1": "nixos"}).values()
    assert isinstance(probed, Unknown) and probed.reason.startswith("git is not installed, which Nix needs")
    assert runner.argvs == [
        ["git", "-C", str(folder), "rev-parse", "--show-toplevel", "--path-format=absolute", "--git-common-dir",
         "--revs-only", "HEAD"],
    ]  # fmt: skip


# ---- the deploy's systems from the probe ----


def test_a_probed_system_is_built_from_its_derivation_without_evaluating(tmp_path: Path) -> None:
    drv = tmp_path / "x-nixos-system-web1.drv"  # stands for a derivation in the store
    drv.write_text("Derive(…)")
    probed = Closure("web1", str(drv), OUT)
    runner = RecordingRunner()
    assert sources.system_closure(runner, "/srv/fleet", "web1", "nixos", "remote", probed) == (OUT, str(drv))
    assert runner.calls == []  # to be built on the target: the derivation is copied as it is
    runner = RecordingRunner().reply(stdout=f"{OUT}\n".encode())
    assert sources.system_closure(runner, "/srv/fleet", "web1", "nixos", "local", probed) == (OUT, str(drv))
    assert runner.argvs == [["nix-store", "--realise", str(drv)]] and runner.calls[0].timeout == 7200.0
    failing = RecordingRunner().reply(returncode=1, stderr=b"error: builder failed")
    with pytest.raises(DeployError, match=f"machine web1: building its system \\({drv}\\) failed"):
        sources.system_closure(failing, "/srv/fleet", "web1", "nixos", "local", probed)


def test_a_collected_derivation_or_an_unknown_system_is_evaluated_as_before() -> None:
    built = json.dumps([{"drvPath": DRV, "outputs": {"out": OUT}}]).encode()
    for probed in (Closure("web1", DRV + ".gone", OUT), Unknown("web1", "no flake.nix"), None):
        runner = RecordingRunner().reply(stdout=built)
        assert sources.system_closure(runner, "/srv/fleet", "web1", "nixos", "local", probed) == (OUT, DRV)
        assert runner.argvs == [
            ["nix", "--extra-experimental-features", "nix-command flakes", "build", "--no-link", "--json",
             '/srv/fleet#nixosConfigurations."web1".config.system.build.toplevel'],
        ]  # fmt: skip


# ---- the real nix ----


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeFlake:
    require(("nix", "nix-bin"))
    monkeypatch.setenv("NIX_CONFIG", nix_env()["NIX_CONFIG"])
    machines = {f"web{i}": FakeSystem(version=f"1.{i}") for i in range(1, 5)}
    return FakeFlake(tmp_path / "flake", {**machines, "mac": FakeSystem(darwin=True)})


def classes(flake: FakeFlake) -> dict:
    return {m: "darwin" if s.darwin else "nixos" for m, s in flake.machines.items()}


@pytest.mark.integration
def test_the_probe_gives_what_nix_eval_gives_from_one_process_then_none(fake: FakeFlake, tmp_path: Path) -> None:
    runner = RecordingRunner(delegate=LOCAL)
    found = probe_closures(runner, fake.ref, classes(fake), cache_home=tmp_path / "cache")
    assert len(nix_calls(runner)) == 1 and len(runner.calls) == 1  # a path flake: no git either
    for m in fake.machines:
        assert found[m] == Closure(m, fake.drv_path(m), fake.out_path(m))
    again = RecordingRunner(delegate=LOCAL)
    assert probe_closures(again, fake.ref, classes(fake), cache_home=tmp_path / "cache") == found
    assert again.calls == []


@pytest.mark.integration
def test_a_new_version_changes_only_that_machines_closure(fake: FakeFlake, tmp_path: Path) -> None:
    before = probe_closures(LOCAL, fake.ref, classes(fake), cache_home=tmp_path)
    fake.set("web2", version="2.0")
    runner = RecordingRunner(delegate=LOCAL)
    after = probe_closures(runner, fake.ref, classes(fake), cache_home=tmp_path)
    assert len(nix_calls(runner)) == 1
    assert [m for m in fake.machines if after[m] != before[m]] == ["web2"]
    assert after["web2"].out_path == fake.out_path("web2") and "2.0" in after["web2"].out_path


@pytest.mark.integration
def test_an_eval_error_names_the_machine_and_ends_with_nix_s_message(fake: FakeFlake, tmp_path: Path) -> None:
    spec = json.loads((fake.directory / "machines.json").read_text())
    del spec["web3"]["kernel"]
    (fake.directory / "machines.json").write_text(json.dumps(spec))
    runner = RecordingRunner(delegate=LOCAL)
    with pytest.raises(ClosureProbeError) as info:
        probe_closures(runner, fake.ref, {**classes(fake), "ghost": "nixos"}, cache_home=tmp_path)
    assert info.value.failures.keys() == {"web3", "ghost"}
    assert info.value.failures["web3"].startswith("attribute 'kernel' missing")
    assert info.value.failures["ghost"] == "the flake has no nixosConfigurations.ghost"
    assert "machine web3: its system does not evaluate:\n  attribute 'kernel' missing" in str(info.value)
    assert len(nix_calls(runner)) == 1 + 6  # all, then each alone
    # the machines that evaluate are cached: asking for them alone runs nothing
    quiet = RecordingRunner(delegate=LOCAL)
    probe_closures(quiet, fake.ref, {"web1": "nixos", "mac": "darwin"}, cache_home=tmp_path)
    assert quiet.calls == []


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True)


@pytest.mark.integration
def test_a_git_flake_is_keyed_on_tracked_files_and_head(fake: FakeFlake, tmp_path: Path) -> None:
    require(("git", "git"))
    folder = fake.directory
    git(folder, "init", "-q")
    git(folder, "add", ".")
    git(folder, "commit", "-qm", "fleet")

    def probe() -> tuple[dict, RecordingRunner]:
        runner = RecordingRunner(delegate=LOCAL)
        return probe_closures(runner, str(folder), classes(fake), cache_home=tmp_path / "unused"), runner

    first, runner = probe()
    assert len(nix_calls(runner)) == 1 and first["web1"].out_path == fake.out_path("web1")
    assert list((folder / ".git" / "fleet" / "closures").glob("*.json"))
    (folder / "notes.txt").write_text("untracked: nix does not see it\n")
    same, runner = probe()
    assert same == first and nix_calls(runner) == [] and len(runner.calls) == 2  # rev-parse, ls-files
    fake.set("web1", version="9")  # a tracked file changed in the working tree
    changed, runner = probe()
    assert len(nix_calls(runner)) == 1 and changed["web1"].out_path == fake.out_path("web1") != first["web1"].out_path
    git(folder, "commit", "-qam", "web1 9")  # same files, a new HEAD: nix's self.rev changes
    _, runner = probe()
    assert len(nix_calls(runner)) == 1
    off = probe_closures(LOCAL, str(folder), {"web1": "nixos"}, enabled=False)
    assert isinstance(off["web1"], Unknown) and off["web1"].fingerprint


@pytest.mark.integration
def test_fleet_plan_shows_each_system(fake: FakeFlake, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (project / "Pulumi.dev.yaml").write_text(f"config:\n  fleet:flake: {fake.ref}\n")
    (project / "stacks" / "dev.py").write_text(
        "from fleet_sdk.spec import Fleet, Machine\n"
        "def build(settings):\n"
        "    return Fleet(name='demo', machines=(Machine(name='web1', target_host='root@web1'),\n"
        "        Machine(name='mac', machine_class='darwin', target_host='admin@mac'),\n"
        "        Machine(name='web2')))\n"
    )
    env = {**nix_env(), "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def plan(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "fleet_sdk", "plan", *args]
        return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, check=False)

    done = plan("--json")
    assert done.returncode == 0, done.stderr
    systems = {m: entry["system"] for m, entry in json.loads(done.stdout)["machines"].items()}
    assert systems == {
        "web1": {"drvPath": fake.drv_path("web1"), "outPath": fake.out_path("web1")},
        "mac": {"drvPath": fake.drv_path("mac"), "outPath": fake.out_path("mac")},
        "web2": {"unknown": "not deployed: no target_host"},
    }
    text = plan().stdout
    assert f"  system {fake.out_path('web1')}\n" in text and "  system unknown: not deployed: no target_host\n" in text
    spec = json.loads((fake.directory / "machines.json").read_text())
    spec["web1"]["version"] = 1  # nix cannot put a number into the system's name
    (fake.directory / "machines.json").write_text(json.dumps(spec))
    broken = plan()
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert broken.stderr.startswith("error: machine web1: its system does not evaluate:\n")
    assert "cannot coerce an integer to a string" in broken.stderr.splitlines()[1]
    off = plan("--json", "-c", "fleet:closureProbe=false")
    assert off.returncode == 0 and "fingerprint" in json.loads(off.stdout)["machines"]["web1"]["system"]
