from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sdk.errors import ConfigError
from fleet_sdk.stack.settings import StackSettings, find_project_dir, load_stack_config


def project(tmp_path: Path, stack_yaml: str) -> Path:
    (tmp_path / "Pulumi.yaml").write_text(
        "name: demo\nruntime: python\nconfig:\n  fleet:flake:\n    type: string\n    default: github:me/fleet\n"
    )
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_yaml)
    return tmp_path


def test_values_as_pulumi_hands_them_to_programs(tmp_path: Path) -> None:
    p = project(
        tmp_path,
        "config:\n  hcloud:token:\n    secure: AAABAx\n  fleet:enabled: [a, b]\n  replicas: 3\n  debug: true\n",
    )
    c = load_stack_config(p, "dev", ["name=web", "fleet:repo=../repo", 'obj={"k": 1}', "n=7"])
    assert c.project == "demo"
    assert c.values["fleet:flake"] == "github:me/fleet"  # project default
    assert c.values["hcloud:token"] == "[secret]" and c.secret_keys == {"hcloud:token"}
    assert c.values["fleet:enabled"] == '["a", "b"]'
    assert c.values["demo:replicas"] == "3" and c.values["demo:debug"] == "true"
    assert c.values["demo:name"] == "web" and c.values["demo:obj"] == '{"k": 1}' and c.values["demo:n"] == "7"
    s = StackSettings.from_values(c.values, p)
    assert s.repo == p / "../repo" and s.flake == "github:me/fleet" and s.enabled == ("a", "b")


def test_enabled_as_comma_list_and_errors(tmp_path: Path) -> None:
    assert StackSettings.from_values({"fleet:enabled": "a, b"}, tmp_path).enabled == ("a", "b")
    assert StackSettings.from_values({}, tmp_path).enabled is None
    with pytest.raises(ConfigError, match="fleet:enabled"):
        StackSettings.from_values({"fleet:enabled": '{"a": 1}'}, tmp_path)
    p = project(tmp_path, "config: {}\n")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_stack_config(p, "dev", ["novalue"])
    (p / "Pulumi.bad.yaml").write_text("config: [unclosed\n")
    with pytest.raises(ConfigError, match="Pulumi.bad.yaml"):
        load_stack_config(p, "bad")


def test_find_project_dir(tmp_path: Path) -> None:
    p = project(tmp_path, "config: {}\n")
    (p / "deep" / "er").mkdir(parents=True)
    assert find_project_dir(p / "deep" / "er") == p
