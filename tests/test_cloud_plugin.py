"""Clouds are plug-ins: a cloud defined outside the SDK (tests/fake_cloud.py) is planned like the
built-in ones once registered, and refused with a clear message when it is not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_sdk.errors import SpecError
from fleet_sdk.graph import clouds, deploy_fleet, export_outputs
from fleet_sdk.sops import credentials as cloudsecrets
from fleet_sdk.spec import Fleet, HetznerHost, Machine
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import COMPUTED, recorded_graph

from .conftest import make_deploy_key
from .fake_cloud import KEY, PLUGIN, SERVER, FakeHost, FakeMocks


@pytest.fixture
def fakecloud() -> Iterator[None]:
    clouds.register(PLUGIN)
    yield
    clouds.unregister(PLUGIN.kind)


def fleet(*machines: Machine) -> Fleet:
    return Fleet(
        name="lab",
        machines=machines
        or (
            Machine(name="probe", host=FakeHost(size="large", protect=True)),
            Machine(name="edge", host=HetznerHost(server_type="cx23", location="fsn1")),
        ),
    )


def test_a_registered_cloud_gets_its_shared_component_and_servers_under_their_machines(
    fakecloud: None, tmp_path: Path
) -> None:
    key = make_deploy_key(tmp_path)
    settings = StackSettings(repo=tmp_path)
    up = recorded_graph(lambda: export_outputs(deploy_fleet(fleet(), settings)), preview=False, mocks=FakeMocks(False))
    assert up.duplicate_urns == []
    probe = up.one("fleet:index:Machine", "probe")
    server = up.one(SERVER, "probe")
    assert server.parent == probe.urn
    assert server.inputs == {"size": "large", "region": "moon-1"}
    assert server.options["protect"] is True
    shared = up.one("fakecloud:index:Cloud", "lab")
    assert shared.parent == up.one("fleet:index:Fleet", "lab").urn
    deploy_key = up.one(KEY, "lab-deploy")
    assert deploy_key.parent == shared.urn and deploy_key.inputs["public_key"] == key
    assert deploy_key.urn in server.dependencies
    # beside the built-in cloud, which keeps its own resources
    assert up.one("hcloud:index/server:Server", "edge").parent == up.one("fleet:index:Machine", "edge").urn
    assert [r.name for r in up.of_type(SERVER)] == ["probe"]
    # the machine's addresses, as the plug-in's server gives them, are the stack's outputs
    probe_ips = up.outputs["machines"]["probe"]
    assert probe_ips["ipv4"].startswith("203.0.113.") and probe_ips["ipv6"].startswith("2001:db8:fa:")
    assert set(up.outputs["machines"]) == {"probe", "edge"}


def test_a_registered_cloud_plans_with_unknown_addresses(fakecloud: None, tmp_path: Path) -> None:
    preview = recorded_graph(lambda: deploy_fleet(fleet(), StackSettings(repo=tmp_path)))
    assert preview.outputs["machines"]["probe"] == {"ipv4": COMPUTED, "ipv6": COMPUTED}
    # no deploy key yet: a preview notes it, as for the built-in clouds
    assert any("deploy" in message for _, message in preview.log)


def test_a_registered_host_is_read_from_a_dict_and_validated_by_its_model(fakecloud: None) -> None:
    m = Machine(name="probe", host={"kind": "fakecloud", "size": "small"})
    assert isinstance(m.host, FakeHost) and m.host.summary == "fakecloud small moon-1"
    assert cloudsecrets.clouds_of(fleet(m)) == {"fakecloud"}
    with pytest.raises(SpecError) as refused:
        Machine(name="probe", host=FakeHost(size="huge", open_ports=("tcp/70000",)))
    assert refused.value.problems == [
        "machine 'probe': host.open_ports: 'tcp/70000' is not <tcp|udp>/<port> or <tcp|udp>/<first>-<last> "
        "with ports 1-65535, e.g. tcp/443 or udp/60000-61000",
        "machine 'probe': host.size: 'huge' is not a fakecloud size; choose one of small, large",
    ]


def test_an_unregistered_cloud_is_refused_before_anything_is_registered(tmp_path: Path) -> None:
    settings = StackSettings(repo=tmp_path)
    with pytest.raises(SpecError) as refused:
        recorded_graph(lambda: deploy_fleet(fleet(), settings))
    assert str(refused.value) == (
        "machine 'probe': host: no cloud plug-in provisions hosts of kind 'fakecloud' (registered: gcp, hetzner); "
        "register its plug-in with fleet_sdk.graph.clouds.register before deploying, or disable the machine"
    )
    # a disabled machine has no cloud resources: nothing to provision, nothing refused
    disabled = fleet(Machine(name="probe", enabled=False, host=FakeHost()))
    graph = recorded_graph(lambda: deploy_fleet(disabled, settings))
    assert [r.type for r in graph.resources] == ["fleet:index:Fleet", "fleet:index:Machine"]


def test_a_plugin_must_provision_the_kind_its_host_model_declares() -> None:
    with pytest.raises(ValueError, match="host model FakeHost has kind 'fakecloud'"):
        clouds.register(clouds.CloudPlugin(kind="other", host=FakeHost, component=PLUGIN.component))
