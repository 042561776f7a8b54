"""Values for generator prompts: never from process arguments (they would show in `ps`).

In order: the environment variable FLEET_PROMPT_<GENERATOR>_<PROMPT> (upper case, other characters
as '_'), a JSON file {"<generator>": {"<prompt>": "value"}}, a persisted previous value (unless
regenerating), then the terminal (hidden input asked twice). Without a terminal a missing value is
an error that names the variable to set.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from fleet_sdk.errors import PromptError
from fleet_sdk.spec.generators import Generator, Prompt


def env_name(generator: str, prompt: str) -> str:
    return "FLEET_PROMPT_" + re.sub(r"[^A-Z0-9]", "_", f"{generator}_{prompt}".upper())


def load_file(path: Path | None) -> dict[str, dict[str, str]]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PromptError(f"{path}: cannot read prompt values ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise PromptError(f'{path}: expected {{"<generator>": {{"<prompt>": "value"}}}}')
    return {g: {p: str(v) for p, v in values.items()} for g, values in data.items()}


def _ask(g: Generator, p: Prompt) -> str:
    question = f"{g.name}: {p.description or p.name}"
    multiline = p.type.startswith("multiline")
    if multiline:
        print(f"{question} (end with Ctrl-D):", file=sys.stderr)
    if p.type in ("hidden", "multiline-hidden"):
        for _ in range(3):
            first = getpass.getpass(f"{question}: ") if not multiline else sys.stdin.read()
            again = getpass.getpass("again: ") if not multiline else first
            if first == again:
                return first.rstrip("\n") if multiline else first
            print("the two entries differ; try again", file=sys.stderr)
        raise PromptError(f"generator {g.name!r}: prompt {p.name!r}: the entries did not match three times")
    if multiline:
        return sys.stdin.read().rstrip("\n")
    return input(f"{question}: ")


def resolve(
    g: Generator,
    file_values: Mapping[str, Mapping[str, str]],
    previous: Callable[[str], str | None],
    regenerate: bool,
    interactive: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = os.environ if env is None else env
    interactive = sys.stdin.isatty() if interactive is None else interactive
    values: dict[str, str] = {}
    for p in g.prompts:
        name = env_name(g.name, p.name)
        if name in env:
            values[p.name] = env[name]
        elif p.name in file_values.get(g.name, {}):
            values[p.name] = file_values[g.name][p.name]
        elif p.persist and not regenerate and (old := previous(p.name)) is not None:
            values[p.name] = old
        elif interactive:
            values[p.name] = _ask(g, p)
        else:
            raise PromptError(
                f"generator {g.name!r} needs a value for prompt {p.name!r}: set {name}, pass --prompts-file, "
                "or run in a terminal"
            )
    return values
