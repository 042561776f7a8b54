"""Every CLI command turns a user's mistake into `error: …` and exit 1, never a traceback: a stack
whose declarations pydantic refuses, and a prompts file that is not there."""

from __future__ import annotations

from pathlib import Path

import pytest

from .vars_project import fleet_cli, make_project

BAD_TYPE = """
from fleet_sdk.spec import Fleet, Machine

def build(settings):
    return Fleet(name="demo", machines=(Machine(name="web", tags="not-a-tuple"),))
"""
GOOD = """
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine, Prompt

def build(settings):
    g = Generator(name="login", files=(GeneratorFile(name="pw"),), prompts=(Prompt(name="pw", persist=True),),
                  script="true")
    return Fleet(name="demo", machines=(Machine(name="web", generators=(g,)),))
"""
COMMANDS = [
    ["plan"],
    ["plan", "--json"],
    ["vars", "generate"],
    ["vars", "check"],
    ["vars", "list", "web"],
    ["vars", "get", "web", "login/pw"],
    ["vars", "fix"],
    ["disko", "check"],
    ["disko", "render", "web"],
    ["zerotier", "admit", "zt"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_validation_error_in_the_stack_is_one_error_line(tmp_path: Path, argv: list[str]) -> None:
    root, env = make_project(tmp_path / "fleet", BAD_TYPE)
    out = fleet_cli(root, env, *argv)
    err = out.stderr.decode()
    assert out.returncode == 1, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert "Machine: tags" in err


def test_a_missing_prompts_file_names_it(tmp_path: Path) -> None:
    root, env = make_project(tmp_path / "fleet", GOOD)
    missing = root / "no-such-prompts.json"
    out = fleet_cli(root, env, "vars", "generate", "--prompts-file", str(missing))
    err = out.stderr.decode()
    assert out.returncode == 1 and err.startswith("error: ") and "Traceback" not in err
    assert "no-such-prompts.json" in err
    assert not (root / "vars").exists()  # nothing generated
