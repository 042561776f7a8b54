"""`generate` called in this process (the CLI tests run it in a `fleet` subprocess): a persisted prompt
keeps its stored answer, progress counts every generator once, the lock names the command holding it,
and `public_values` returns exactly the machine's public files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.sops.tree import KeyEntry, SopsTree
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine, Prompt
from fleet_sdk.vars import generate as generate_module
from fleet_sdk.vars.generate import GenerateOptions, generate, public_values
from fleet_sdk.vars.lock import lock_path
from fleet_sdk.vars.store import GeneratorId, VarsStore, generator_id

PRIVATE, PUBLIC = sops.generate()

PASSWORD = Generator(
    name="password",
    prompts=(Prompt(name="value", persist=True),),
    files=(GeneratorFile(name="value"),),
    script="cat $prompts/value > $out/value",
)
NAME = Generator(
    name="name",
    files=(GeneratorFile(name="hostname", secret=False), GeneratorFile(name="token")),
    script="echo host-$RANDOM > $out/hostname; echo tok > $out/token",
)
OTHER = Generator(name="other", files=(GeneratorFile(name="pub", secret=False),), script="echo other > $out/pub")


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    SopsTree(repo).write_keys("users", "admin", [KeyEntry(PUBLIC)])
    return repo


def _options(**kw: object) -> GenerateOptions:
    return GenerateOptions(identities=[PRIVATE], interactive=False, **kw)  # type: ignore[arg-type]


def test_a_persisted_prompt_keeps_its_stored_answer(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    fleet = Fleet(name="f", machines=(Machine(name="m", generators=(PASSWORD,)),))
    answers = tmp_path / "answers.json"
    answers.write_text('{"password": {"value": "first"}}')
    generate(repo, fleet, _options(prompts_file=answers))
    store = VarsStore(repo)
    gid = generator_id(PASSWORD, "m")
    assert store.read(gid, PASSWORD.files[0], [PRIVATE]) == b"first"
    # a persisted prompt's answer is read back from the store (instead of being asked for again)
    previous = generate_module._previous(store, _node(fleet, gid), "value", identities=[PRIVATE])
    assert previous == "first"
    assert generate_module._previous(store, _node(fleet, gid), "no-such-file", identities=[PRIVATE]) is None


def _node(fleet: Fleet, gid: GeneratorId) -> generate_module.Node:
    from fleet_sdk.vars.selection import select

    nodes = select(fleet, lambda n: False, None, None, True)
    return next(n for n in nodes if n.gid == gid)


def test_previous_of_a_file_never_stored_is_none(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    fleet = Fleet(name="f", machines=(Machine(name="m", generators=(PASSWORD,)),))
    gid = generator_id(PASSWORD, "m")
    assert generate_module._previous(VarsStore(repo), _node(fleet, gid), "value", identities=[PRIVATE]) is None


def test_progress_counts_each_generator_once_in_order(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    fleet = Fleet(name="f", machines=tuple(Machine(name=m, generators=(NAME, OTHER)) for m in ("a", "b")))
    seen: list[tuple[int, int, GeneratorId]] = []
    result = generate(repo, fleet, _options(), progress=lambda done, total, gid: seen.append((done, total, gid)))
    assert [done for done, _, _ in seen] == [1, 2, 3, 4]
    assert {total for _, total, _ in seen} == {4}
    assert sorted(seen_gid.name + "@" + str(seen_gid.machine) for _, _, seen_gid in seen) == [
        "name@a",
        "name@b",
        "other@a",
        "other@b",
    ]
    assert sorted(g.name for g in result.generated) == ["name", "name", "other", "other"]


def test_the_lock_names_fleet_vars_generate_while_it_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path)
    holder: list[str] = []
    real = generate_module.select

    def spying_select(*args: object, **kw: object) -> object:
        holder.append(lock_path(repo).read_text())
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(generate_module, "select", spying_select)
    generate(repo, Fleet(name="f", machines=(Machine(name="m", generators=(OTHER,)),)), _options())
    assert holder and holder[0].split(" ", 1)[1] == "fleet vars generate\n"


def test_public_values_are_the_machines_public_files_only(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    fleet = Fleet(
        name="f",
        machines=(Machine(name="a", generators=(NAME, OTHER)), Machine(name="b", generators=(OTHER,))),
    )
    assert public_values(VarsStore(repo), fleet, "a") == {}
    generate(repo, fleet, _options())
    values = public_values(VarsStore(repo), fleet, "a")
    assert set(values) == {"name/hostname", "other/pub"}
    assert values["other/pub"] == "other\n"
    assert values["name/hostname"].startswith("host-")
    assert public_values(VarsStore(repo), fleet, "b") == {"other/pub": "other\n"}


KEY = Generator(name="key", files=(GeneratorFile(name="k"),), script="printf 'k3y' > $out/k")
USES_KEY = Generator(
    name="uses-key",
    dependencies=("key",),
    files=(GeneratorFile(name="copy", secret=False),),
    script="cat $in/key/k > $out/copy",
)


def test_a_dependency_stored_earlier_is_decrypted_with_the_given_identities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "no-such-key"))
    repo = _repo(tmp_path)
    fleet = Fleet(name="f", machines=(Machine(name="m", generators=(KEY, USES_KEY)),))
    generate(repo, fleet, _options(generators=["key"]))
    # the dependent alone: its input comes from the store, opened with the identities passed in
    result = generate(repo, fleet, _options(generators=["uses-key"]))
    assert [g.name for g in result.generated] == ["uses-key"]
    assert public_values(VarsStore(repo), fleet, "m") == {"uses-key/copy": "k3y"}


def test_an_undecodable_public_value_is_replaced_not_raised(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    binary = Generator(name="bin", files=(GeneratorFile(name="b", secret=False),), script=r"printf 'a\377b' > $out/b")
    fleet = Fleet(name="f", machines=(Machine(name="m", generators=(binary,)),))
    generate(repo, fleet, _options())
    assert public_values(VarsStore(repo), fleet, "m") == {"bin/b": "a\ufffdb"}


def test_a_full_disk_while_storing_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from fleet_sdk.vars.generate import VarsWriteError

    def full(self: VarsStore, batch: object) -> list[Path]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(VarsStore, "commit", full)
    with pytest.raises(VarsWriteError) as info:
        generate(_repo(tmp_path), Fleet(name="f", machines=(Machine(name="m", generators=(OTHER,)),)), _options())
    assert str(info.value).startswith("putting generated vars in place: cannot write")
    assert "nothing of it was stored (generators stored before it stay). Free space or make the repository " in str(
        info.value
    )


def test_a_failure_whose_git_add_fails_too_reports_the_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet_sdk.vars.execute import GeneratorError

    def broken_add(*args: object, **kw: object) -> None:
        raise OSError(5, "Input/output error")

    from types import SimpleNamespace

    monkeypatch.setattr(generate_module, "git", SimpleNamespace(add=broken_add))  # generate's own git only
    failing = Generator(name="bad", files=(GeneratorFile(name="x", secret=False),), script="exit 3")
    fleet = Fleet(name="f", machines=(Machine(name="m", generators=(failing,)),))
    with pytest.raises(GeneratorError):
        generate(_repo(tmp_path), fleet, _options())


def test_the_default_parallelism_is_twice_the_cores_up_to_eight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    from concurrent.futures import ThreadPoolExecutor

    seen: list[int | None] = []

    class Recording(ThreadPoolExecutor):
        def __init__(self, max_workers: int | None = None) -> None:
            seen.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(generate_module, "ThreadPoolExecutor", Recording)
    fleet = Fleet(name="f", machines=(Machine(name="m", generators=(OTHER,)),))
    generate(_repo(tmp_path), fleet, _options())
    assert seen == [min(8, (os.cpu_count() or 2) * 2)]
    generate(_repo(tmp_path / "again"), fleet, _options(jobs=3))
    assert seen[-1] == 3
