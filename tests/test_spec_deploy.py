"""Per-machine deploy settings (`Machine.deploy`): every refusal names the machine and the field, the
order of waves, and the mapping onto the engine's DeploySettings."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from fleet_sdk.deploy.from_spec import deploy_settings
from fleet_sdk.deploy.settings import DeploySettings
from fleet_sdk.errors import SpecError
from fleet_sdk.spec import Deploy, Fleet, HealthChecks, HetznerHost, Machine
from fleet_sdk.spec.deploy import deploy_order


def hz() -> HetznerHost:
    return HetznerHost(server_type="cx22", location="nbg1")


DEFAULT = Deploy()


def machine(name: str, deploy: Deploy | None = DEFAULT, **kw: object) -> Machine:
    return Machine(name=name, host=hz(), deploy=deploy, **kw)


def problems_of(make: object) -> list[str]:
    with pytest.raises(SpecError) as e:
        make()  # type: ignore[operator]
    return e.value.problems


def test_deploy_is_unset_by_default_and_defaults_match_the_engine() -> None:
    assert Machine(name="web").deploy is None
    d = Deploy()
    assert (d.build_on, d.reboot, d.on_unit_failure) == ("local", "never", "rollback")
    assert (d.confirm_timeout, d.after) == (60, ())
    assert d.health_checks == HealthChecks()
    assert deploy_settings(d) == DeploySettings()
    assert deploy_settings(None) == DeploySettings()


@pytest.mark.parametrize("seconds", [0, -5, 601])
def test_confirm_timeout_is_bounded(seconds: int) -> None:
    assert problems_of(lambda: machine("web", Deploy(confirm_timeout=seconds))) == [
        f"machine 'web': deploy.confirm_timeout: {seconds} seconds is not between 1 and 600"
    ]


def test_confirm_timeout_is_whole_seconds_not_a_flag_or_text() -> None:
    for bad in (True, "60", 1.5):
        with pytest.raises(ValidationError):
            Deploy(confirm_timeout=bad)


@pytest.mark.parametrize(
    ("field", "value"), [("build_on", "cloud"), ("reboot", "always"), ("on_unit_failure", "ignore")]
)
def test_policies_are_one_of_their_choices(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Deploy(**{field: value})
    with pytest.raises(ValidationError):
        Deploy(unknown=1)  # type: ignore[call-arg]


def test_health_check_commands_must_check_something() -> None:
    checks = HealthChecks(commands=("curl -fsS localhost", "  ", "a\0b"))
    assert problems_of(lambda: machine("web", Deploy(health_checks=checks))) == [
        "machine 'web': deploy.health_checks.commands: an empty command checks nothing; remove it",
        "machine 'web': deploy.health_checks.commands: 'a\\x00b' contains a NUL byte",
    ]


def test_health_check_units_are_systemd_unit_names_named_once() -> None:
    checks = HealthChecks(units=("nginx.service", "-bad", "a b", "getty@tty1.service", "nginx.service"))
    assert problems_of(lambda: machine("web", Deploy(health_checks=checks))) == [
        "machine 'web': deploy.health_checks.units: '-bad' is not a systemd unit name "
        "(letters, digits, ':', '_', '.', '@', '\\' and '-', not starting with '-')",
        "machine 'web': deploy.health_checks.units: 'a b' is not a systemd unit name "
        "(letters, digits, ':', '_', '.', '@', '\\' and '-', not starting with '-')",
        "machine 'web': deploy.health_checks.units: 'nginx.service' is named twice; name it once",
    ]


def test_darwin_machines_check_commands_not_units() -> None:
    def make(checks: HealthChecks) -> Machine:
        return Machine(name="mac", machine_class="darwin", target_host="me@mac.zt", deploy=Deploy(health_checks=checks))

    assert make(HealthChecks(commands=("true",))).deploy is not None
    assert problems_of(lambda: make(HealthChecks(units=("sshd",)))) == [
        "machine 'mac': deploy.health_checks.units: darwin machines have no systemd units; check them with commands"
    ]


def test_a_deployed_machine_needs_an_address() -> None:
    assert problems_of(lambda: Machine(name="box", deploy=Deploy())) == [
        "machine 'box': deploy: the machine has no host and no target_host, so the deploy has no address; "
        "set target_host"
    ]
    # a cloud machine is reached at its server's address; a machine by hand at its target host
    assert machine("web").deploy == Deploy()
    assert Machine(name="box", target_host="root@box.zt", deploy=Deploy()).deploy == Deploy()


def test_after_names_neither_itself_nor_a_machine_twice() -> None:
    assert problems_of(lambda: machine("web", Deploy(after=("web",)))) == [
        "machine 'web': deploy.after: 'web' is the machine itself; a machine cannot deploy after itself"
    ]
    assert problems_of(lambda: machine("web", Deploy(after=("db", "db")))) == [
        "machine 'web': deploy.after: 'db' is named twice; name it once"
    ]


def test_after_names_machines_of_the_fleet_that_the_graph_deploys() -> None:
    def fleet(*machines: Machine) -> Fleet:
        return Fleet(name="acme", machines=machines)

    assert problems_of(lambda: fleet(machine("db"), machine("web", Deploy(after=("db2",))))) == [
        "machine 'web': deploy.after: 'db2' is not a machine of this fleet"
    ]
    assert problems_of(lambda: fleet(machine("db", None), machine("web", Deploy(after=("db",))))) == [
        "machine 'web': deploy.after: 'db' has no deploy settings, so the graph does not deploy it; "
        "give it deploy=Deploy() or remove it from after"
    ]


def test_machines_cannot_wait_for_each_other_in_a_cycle() -> None:
    a, b, c = machine("a", Deploy(after=("c",))), machine("b", Deploy(after=("a",))), machine("c", Deploy(after=("b",)))
    assert problems_of(lambda: Fleet(name="acme", machines=(a, b, c))) == [
        "machine 'a': deploy.after: machines deploy after each other in a cycle: a -> c -> b -> a"
    ]


def test_deploy_order_puts_each_machine_after_the_ones_it_names() -> None:
    fleet = Fleet(
        name="acme",
        machines=(
            machine("web", Deploy(after=("db", "cache"))),
            machine("plain", None),
            machine("db", Deploy(after=("cache",))),
            machine("cache"),
            machine("api"),
        ),
    )
    assert [m.name for m in deploy_order(fleet.machines)] == ["cache", "api", "db", "web"]


def test_settings_leave_out_the_order() -> None:
    d = Deploy(reboot="if-needed", after=("db",))
    assert "after" not in d.settings() and d.settings()["reboot"] == "if-needed"
    assert d.settings() == Deploy(reboot="if-needed").settings()


def test_deploy_settings_map_onto_the_engine() -> None:
    d = Deploy(
        build_on="remote",
        reboot="if-needed",
        confirm_timeout=90,
        health_checks=HealthChecks(commands=("curl -fsS localhost",), units=("nginx.service",)),
        on_unit_failure="keep",
        after=("db",),
    )
    s = deploy_settings(d)
    assert (s.build_on, s.reboot, s.on_unit_failure, s.confirm_timeout) == ("remote", "if-needed", "keep", 90.0)
    assert (s.health_commands, s.health_units) == (("curl -fsS localhost",), ("nginx.service",))
    # the watchdog keeps its margin over the switch and the confirmation; the rest stays the engine's
    assert s.watchdog_seconds == 600 + 90 + 240
    assert dataclasses.replace(
        s, build_on="local", reboot="never", on_unit_failure="rollback", confirm_timeout=60, health_commands=(),
        health_units=(), watchdog_seconds=900,
    ) == DeploySettings()  # fmt: skip


def test_a_long_confirmation_moves_the_watchdog_later() -> None:
    s = deploy_settings(Deploy(confirm_timeout=600))
    # the watchdog must outlast a switch and its confirmation, the lock the watchdog
    assert s.watchdog_seconds > s.switch_timeout + s.confirm_timeout
    assert s.lock_seconds > s.watchdog_seconds
    assert deploy_settings(Deploy(confirm_timeout=30)).watchdog_seconds == DeploySettings().watchdog_seconds
