"""The bad-input corpus: every case in tests/corpus/*.yaml runs the real `fleet` CLI against a copy
of one generated fleet repository and must end in `error: …` (exit 1 unless it says otherwise),
never a traceback, with vars/ and sops/ unchanged unless the case says they may change.

A corpus file is {"class": <what kind of fault>, "cases": [case, …]}; a case is

    name:       unique within its file
    setup:      steps applied to the copy, in order (paths relative to the project, which is also
                the fleet repository):
                  {stack: TEXT}                stacks/dev.py (the whole program)
                  {machines: TEXT}             the machines of the template program (STACK below)
                  {instances: TEXT}            its service instances (default none)
                  {config: TEXT}               Pulumi.dev.yaml
                  {write: PATH, text: TEXT}    or hex: "ff fe …" for bytes
                  {remove: PATH}               a file, link or folder
                  {mkdir: PATH}
                  {symlink: PATH, to: TARGET}
                  {json: PATH, set: {DOTTED.KEY: VALUE}, delete: [DOTTED.KEY]}   edit a JSON file
                  {chattr: PATH, flags: "+i"}  undone after the case
    argv:       the command line; `--project <copy> --stack dev` is appended unless `raw: true`;
                `{project}` in argv and env is the copy's path
    stdin:      text for standard input
    env:        extra environment ({"SOPS_AGE_KEY": null} removes one)
    exit:       expected exit code (default 1)
    message:    fragments expected in standard error (a string or a list)
    stdout:     fragments expected in standard output; a case with them may fail without `error:`
                (`fleet vars check` reports its findings there)
    unchanged:  whether vars/ and sops/ must be byte-for-byte as before (default true)
    subprocess: run `python -m fleet_sdk` instead of fleet_sdk.cli.main in-process (default false)
    xfail:      why it fails today (a check in a module owned elsewhere); XPASS once it lands
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_sdk import sops
from fleet_sdk.cli import main
from fleet_sdk.sops.tree import KeyEntry, SopsTree

from .conftest import make_deploy_key

CORPUS = Path(__file__).parent / "corpus"

STACK = """\
from fleet_sdk.spec import *
from fleet_sdk.disko import DiskLayout, ext4_root, zfs_root


def _login(inputs, prompts, out):
    (out / "password").write_text("hunter2")
    (out / "user").write_text("alice")


def _token(inputs, prompts, out):
    (out / "token").write_text("t0ken")


LOGIN = Generator(
    name="web-login", files=(GeneratorFile(name="password"), GeneratorFile(name="user", secret=False)), python=_login
)
TOKEN = Generator(name="shared-token", share=True, files=(GeneratorFile(name="token"),), validation={"v": 1}, python=_token)


def ZT(**roles):
    return ServiceInstance(name="zt", module="zerotier", roles=roles)


def build(settings):
    return Fleet(name="demo", machines=({machines},), instances=({instances}))
"""
MACHINES = (
    'Machine(name="web", generators=(LOGIN, TOKEN)), Machine(name="db", generators=(TOKEN,)), '
    'Machine(name="edge", host=HetznerHost(server_type="cx22", location="fsn1"))'
)


def stack_program(machines: str = MACHINES, instances: str = "") -> str:
    return STACK.replace("{machines}", machines).replace("{instances}", instances + ("," if instances else ""))


@dataclass
class Case:
    group: str
    name: str
    argv: list[str]
    setup: list[dict[str, Any]] = field(default_factory=list)
    exit: int = 1
    message: list[str] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    unchanged: bool = True
    raw: bool = False
    stdin: str | None = None
    env: dict[str, str | None] = field(default_factory=dict)
    subprocess: bool = False
    xfail: str | None = None

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}"


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        names = set()
        for raw in doc["cases"]:
            raw = dict(raw)
            listed = {k: [v] if isinstance(v, str) else v for k in ("message", "stdout") if (v := raw.pop(k, None))}
            case = Case(group=path.stem, **listed, **raw)
            assert case.name not in names, f"{path.name}: case {case.name!r} twice"
            names.add(case.name)
            cases.append(case)
    return cases


CASES = load_cases()


def store_hash(repo: Path) -> str:
    """Content hash of vars/ and sops/: every path, file bytes and link target, as found."""
    digest = hashlib.sha256()
    for top in ("vars", "sops"):
        root = repo / top
        if not root.exists() and not root.is_symlink():
            continue
        for dirpath, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
                path = os.path.join(dirpath, name)
                digest.update(os.path.relpath(path, repo).encode() + b"\0")
                if os.path.islink(path):
                    digest.update(b"-> " + os.readlink(path).encode())
                else:
                    with contextlib.suppress(OSError):
                        digest.update(Path(path).read_bytes())
                digest.update(b"\0")
    return digest.hexdigest()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The generated fleet repository every case starts from, and the admin's age key."""
    root = tmp_path_factory.mktemp("corpus") / "base"
    (root / "stacks").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (root / "Pulumi.dev.yaml").write_text("config:\n  fleet:flake: .\n")
    (root / "stacks" / "dev.py").write_text(stack_program())
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    make_deploy_key(root)
    private, public = sops.generate()
    SopsTree(root).write_keys("users", "admin", [KeyEntry(public)])
    SopsTree(root).write_secret(SopsTree(root).secret_dir("api-token"), b"token\n", {"users": ["admin"]})
    with _environment({"SOPS_AGE_KEY": private, "SOPS_AGE_KEY_FILE": None}):
        code, _, err = _in_process(["vars", "generate", "--project", str(root), "--stack", "dev"], None)
    assert code == 0, err
    yield root, private


@contextlib.contextmanager
def _environment(changes: dict[str, str | None]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in changes}
    try:
        for k, v in changes.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _in_process(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
    out, err = io.TextIOWrapper(io.BytesIO(), errors="replace"), io.StringIO()  # `vars get` writes bytes
    saved_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO((stdin or "").encode()))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:  # what Python would print for an uncaught exception
                traceback.print_exc()
                code = 1
    finally:
        sys.stdin = saved_stdin
    out.flush()
    return code, out.buffer.getvalue().decode(errors="replace"), err.getvalue()  # type: ignore[attr-defined]


def _set_dotted(doc: Any, dotted: str, value: Any, delete: bool = False) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    key: Any = int(last) if isinstance(doc, list) else last
    if delete:
        del doc[key]
    else:
        doc[key] = value


def apply(step: dict[str, Any], project: Path, immutable: list[Path]) -> None:
    def at(rel: str) -> Path:
        return project / rel

    if "stack" in step:
        (project / "stacks" / "dev.py").write_text(textwrap.dedent(step["stack"]))
    elif "machines" in step or "instances" in step:
        program = stack_program(step.get("machines", MACHINES), step.get("instances", ""))
        (project / "stacks" / "dev.py").write_text(program)
    elif "config" in step:
        (project / "Pulumi.dev.yaml").write_text(step["config"])
    elif "write" in step:
        path = at(step["write"])
        path.parent.mkdir(parents=True, exist_ok=True)
        data = bytes.fromhex(step["hex"]) if "hex" in step else step["text"].encode()
        path.write_bytes(data)
    elif "remove" in step:
        path = at(step["remove"])
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    elif "mkdir" in step:
        at(step["mkdir"]).mkdir(parents=True)
    elif "symlink" in step:
        path = at(step["symlink"])
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(step["to"], path)
    elif "json" in step:
        path = at(step["json"])
        doc = json.loads(path.read_text())
        for dotted, value in (step.get("set") or {}).items():
            _set_dotted(doc, dotted, value)
        for dotted in step.get("delete") or []:
            _set_dotted(doc, dotted, None, delete=True)
        path.write_text(json.dumps(doc))
    elif "chattr" in step:
        path = at(step["chattr"])
        subprocess.run(["chattr", step.get("flags", "+i"), str(path)], check=True)
        immutable.append(path)
    else:
        raise AssertionError(f"unknown setup step {step}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus_case(case: Case, base: tuple[Path, str], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if case.xfail:  # reported as XPASS once the check lands
        request.applymarker(pytest.mark.xfail(reason=case.xfail, strict=True))
    root, private = base
    project = tmp_path / "project"
    subprocess.run(["cp", "-a", str(root), str(project)], check=True)
    immutable: list[Path] = []
    try:
        for step in case.setup:
            apply(step, project, immutable)
        before = store_hash(project)
        argv = [a.replace("{project}", str(project)) for a in case.argv]
        if not case.raw:
            argv += ["--project", str(project), "--stack", "dev"]
        env = {"SOPS_AGE_KEY": private, "SOPS_AGE_KEY_FILE": None}
        env |= {k: None if v is None else v.replace("{project}", str(project)) for k, v in case.env.items()}
        if case.subprocess:
            full_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
            done = subprocess.run(
                [sys.executable, "-m", "fleet_sdk", *argv],
                input=case.stdin,
                capture_output=True,
                text=True,
                cwd=project,
                env=full_env,
                check=False,
            )
            code, out, err = done.returncode, done.stdout, done.stderr
        else:
            with _environment(env), contextlib.chdir(project):
                code, out, err = _in_process(argv, case.stdin)
        after = store_hash(project)
    finally:
        for path in immutable:
            subprocess.run(["chattr", "-i", str(path)], check=False)
    problems = []
    if "Traceback" in err:
        problems.append("ended in a traceback")
    if case.exit != 0 and not case.stdout and not err.startswith("error: "):
        problems.append("the message does not start with 'error: '")
    if code != case.exit:
        problems.append(f"exit {code}, expected {case.exit}")
    problems += [f"{fragment!r} not in the message" for fragment in case.message if fragment not in err]
    problems += [f"{fragment!r} not in the output" for fragment in case.stdout if fragment not in out]
    if case.unchanged and before != after:
        problems.append("vars/ or sops/ changed")
    assert not problems, f"{case.id}: {'; '.join(problems)}\n--- stderr ---\n{err}"


def test_every_class_has_enough_cases() -> None:
    by_class: dict[str, int] = {}
    for path in sorted(CORPUS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        by_class[doc["class"]] = by_class.get(doc["class"], 0) + len(doc["cases"])
    assert sum(by_class.values()) >= 120
    assert all(n >= 10 for n in by_class.values()), by_class


def test_debug_shows_the_traceback(base: tuple[Path, str], tmp_path: Path) -> None:
    root, private = base
    project = tmp_path / "project"
    subprocess.run(["cp", "-a", str(root), str(project)], check=True)
    (project / "stacks" / "dev.py").write_text("def build(settings):\n    return 1 / 0\n")
    (project / "sops" / "users" / "admin" / "key.json").unlink()
    (project / "sops" / "users" / "admin" / "key.json").mkdir()
    env = {**os.environ, "SOPS_AGE_KEY": private}
    for argv, cause in ((["plan"], "ZeroDivisionError"), (["vars", "keygen", "--repo", str(project)], "Error")):
        argv += ["--project", str(project), "--stack", "dev", "--debug"]
        done = subprocess.run(
            [sys.executable, "-m", "fleet_sdk", *argv], capture_output=True, text=True, env=env, check=False
        )
        assert done.returncode == 1 and "Traceback" in done.stderr and cause in done.stderr, done.stderr


def test_the_pulumi_program_reads_every_key_as_fleet_plan_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `pulumi up` the settings come from the engine's config (pulumi.runtime), not the YAML."""
    from pulumi.runtime import config as runtime_config

    from fleet_sdk.errors import ConfigError
    from fleet_sdk.graph.fleet import settings_from_pulumi_config

    saved = dict(runtime_config.CONFIG.get())
    try:
        runtime_config.set_all_config({"fleet:enabeld": '["web"]', "demo:size": "3"})
        with pytest.raises(ConfigError, match=r"fleet:enabeld: .*did you mean fleet:enabled"):
            settings_from_pulumi_config(tmp_path)
        runtime_config.set_all_config({"fleet:config:enabled": "[]"})  # the form older engines pass
        with pytest.raises(ConfigError, match="fleet:allowEmpty"):
            settings_from_pulumi_config(tmp_path)
        runtime_config.set_all_config(
            {"fleet:enabled": '["web"]', "demo:size": "3", "demo:token": "hunter2"}, ["demo:token"]
        )
        settings = settings_from_pulumi_config(tmp_path)
        assert settings.enabled == ("web",) and settings.object("demo:size") == 3
        assert settings.values["demo:token"] == "[secret]"  # a stack reads secrets with pulumi.Config
        runtime_config.set_all_config({}, [])
        monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"fleet:repo": "x", "fleet:flak": "."}))
        with pytest.raises(ConfigError, match="fleet:flak"):
            settings_from_pulumi_config(tmp_path)
    finally:
        runtime_config.set_all_config(saved, [])


def test_errors_that_name_no_file_keep_their_traceback() -> None:
    """Only errors of reading or writing a named file are the user's; anything else is a bug to show."""
    from fleet_sdk.errors import file_error_message

    assert file_error_message(OSError("no file named")) is None
    assert file_error_message(ValueError("a bug")) is None
    try:
        b"\xff".decode()
    except UnicodeDecodeError as e:
        assert file_error_message(e) is None
    message = file_error_message(IsADirectoryError(21, "Is a directory", "sops/users/admin/key.json"))
    assert message is not None and message.startswith("sops/users/admin/key.json: is a folder")
