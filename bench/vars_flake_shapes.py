"""The generators of the acceptance test's flake (tests/test_vars_flake_acceptance.py), scaled to n machines.

Its flake has three machines (tests/vars_flake.py, "the acceptance flake's machines"): web (NixOS)
declares ca, mesh, host-key, cert, login, disk and seed; db (NixOS) ca, mesh, host-key and cert; mac
(darwin) ca, mesh and host-key. ca and mesh are shared (mesh's secret deployed to every machine, ca's
not deployed), cert depends on host-key and ca, host-key has a validation value, login has a hidden
persisted prompt and a multiline one, disk's file is needed for partitioning, seed's secret is not
deployed. All run the default scripts of tests/vars_flake.py (each file written with printf,
dependencies and prompts appended). Here machine i is web-, db- or mac-shaped by i % 3, so 100
machines are 34 web, 33 db and 33 mac ones: 271 generators.
"""

from __future__ import annotations

from typing import Any


def prompts() -> dict[str, dict[str, str]]:
    """The prompts' values the acceptance test gives."""
    from tests.vars_flake import BANNER, PASSWORD

    return {"login": {"password": PASSWORD, "banner": BANNER}}


def acceptance_specs(n: int) -> dict[str, Any]:
    """machine name -> tests.vars_flake.MachineSpec, web-, db- and mac-shaped in turn."""
    from tests.vars_flake import CA, CERT, DISK, HOST_KEY, LOGIN, MESH, SEED, MachineSpec

    shapes = (
        ("nixos", (CA, MESH, HOST_KEY, CERT, LOGIN, DISK, SEED)),  # web
        ("nixos", (CA, MESH, HOST_KEY, CERT)),  # db
        ("darwin", (CA, MESH, HOST_KEY)),  # mac
    )
    machines = {}
    for i in range(n):
        machine_class, generators = shapes[i % 3]
        machines[f"m{i:03d}"] = MachineSpec(machine_class, generators)  # type: ignore[arg-type]
    return machines
