"""A generator's validation decides whether it is current, as clan's `.validation-hash` does: a
changed validation, or a missing hash file where one is declared, regenerates; an equal one does not."""

from __future__ import annotations

from pathlib import Path

from .vars_project import fleet_cli, make_project

STACK = """
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine

def build(settings):
    cert = Generator(name="cert", files=(GeneratorFile(name="c", secret=False),), validation={{"domain": "{domain}"}},
                     script='head -c 12 /dev/urandom | od -An -tx1 | tr -d " \\\\n" > "$out/c"')
    return Fleet(name="demo", machines=(Machine(name="web", generators=(cert,)),))
"""
VALUE = Path("vars/per-machine/web/cert/c/value")
HASH = Path("vars/per-machine/web/cert/.validation-hash")


def test_validation_changes_regenerate_and_equal_ones_do_not(tmp_path: Path) -> None:
    root, env = make_project(tmp_path / "fleet", STACK.format(domain="zt"))
    assert fleet_cli(root, env, "vars", "generate").returncode == 0
    first = (root / VALUE).read_text()
    assert len(first) == 24 and (root / HASH).is_file()

    again = fleet_cli(root, env, "vars", "generate")  # nothing changed: nothing regenerated
    assert b"every generator is up to date" in again.stdout and (root / VALUE).read_text() == first

    (root / "stacks/dev.py").write_text(STACK.format(domain="lan"))
    check = fleet_cli(root, env, "vars", "check")
    assert check.returncode == 1 and b"web: cert: validation changed" in check.stdout
    assert fleet_cli(root, env, "vars", "generate").returncode == 0
    second = (root / VALUE).read_text()
    assert second != first

    (root / HASH).unlink()  # clan regenerates a generator whose declared hash is missing
    assert fleet_cli(root, env, "vars", "check").returncode == 1
    assert fleet_cli(root, env, "vars", "generate").returncode == 0
    assert (root / VALUE).read_text() != second and (root / HASH).is_file()
