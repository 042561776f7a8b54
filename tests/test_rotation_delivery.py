"""A rotated shared secret reaches exactly the machines that use it: `pulumi up` (the applier of
fleet_sdk.testing, every step run for real) against three machines installed by hand (FakeTargets
over real ssh), two of which share a generator whose file is uploaded before activation. After
`fleet vars rotate --shared`, the next apply deploys those two and nothing else, and each holds the
new value; the third keeps what it had, untouched."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fleet_sdk.review import plan as planning
from fleet_sdk.review.diff import diff_plans
from fleet_sdk.review.markdown import render_markdown
from fleet_sdk.testing import FakeTargets
from fleet_sdk.testing.targethost import missing_requirements
from fleet_sdk.vars.store import GeneratorId, VarsStore

from .test_apply_e2e import MACHINES, Site, adopt_host_keys, summary
from .vars_project import fleet_cli

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_requirements()), reason="; ".join(missing_requirements())),
]

STACK = """
import secrets
from fleet_sdk.spec import Deploy, Fleet, Generator, GeneratorFile, Machine
from fleet_sdk.vars import stock

TARGETS = {targets!r}


def _random(name):
    def run(inputs, prompts, out):
        (out / name).write_text(secrets.token_hex(16))
    return run


# shared by web1 and web2, uploaded before activation; ctl has a secret of its own
token = Generator(name="token", share=True, files=(GeneratorFile(name="t", needed_for="activation"),),
                  python=_random("t"))
own = Generator(name="own", files=(GeneratorFile(name="o", needed_for="activation"),), python=_random("o"))


def machine(name, generators):
    return Machine(name=name, target_host=TARGETS[name], generators=(stock.openssh(), *generators), deploy=Deploy())


def build(settings):
    return Fleet(name="demo", machines=(
        machine("ctl", (own,)), machine("web1", (token,)), machine("web2", (token, own)),
    ))
"""


class RotationSite(Site):
    def stack(self, targets: dict[str, str] | None = None, web2_checks: tuple[str, ...] = ()) -> None:
        (self.project / "stacks/dev.py").write_text(STACK.format(targets=targets))


def uploaded(root: Path, rel: str) -> Path:
    """Where a deploy put an activation secret on the target (its root folder)."""
    return root / "var/lib/sops-nix/activation" / rel


def test_a_rotated_shared_secret_is_delivered_to_both_machines_using_it_and_nothing_else(
    tmp_path: Path, target_hosts: FakeTargets, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    site = RotationSite(tmp_path, target_hosts, monkeypatch, version="1")
    built = site.flake.build_all()
    hosts = {m: target_hosts.new(m) for m in MACHINES}
    for t in hosts.values():
        t.install(built[t.name])
    site.stack(targets={m: t.target for m, t in hosts.items()})
    adopt_host_keys(site.project, list(hosts.values()), site.age_key)
    first = site.up()
    assert first.ran() == sorted(f"{m}-{s}" for m in MACHINES for s in ("vars", "deploy")), summary(first)
    store = VarsStore(site.project)
    shared = "shared/token/t"
    old = store.secret(GeneratorId("token", None), "t", [site.age_key])
    for m in ("web1", "web2"):
        assert uploaded(hosts[m].root, shared).read_bytes() == old
    ctl_own = uploaded(hosts["ctl"].root, "per-machine/ctl/own/o")
    web2_own = uploaded(hosts["web2"].root, "per-machine/web2/own/o")
    kept = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (ctl_own,)}
    web2_value = web2_own.read_bytes()
    ctl_generation = hosts["ctl"].current_system()
    assert site.up().ran() == []

    planned = planning.make_plan(site.project, "dev", []).document  # what `fleet plan` saw before
    done = fleet_cli(site.project, dict(os.environ), "vars", "rotate", "--shared", "token")
    assert done.returncode == 0, done.stderr.decode()
    assert "new values for machine(s) web1, web2:" in done.stdout.decode()
    new = store.secret(GeneratorId("token", None), "t", [site.age_key])
    assert new != old

    # the review of the change (`fleet plan --against`, the PR comment) names the machines receiving them
    diff = diff_plans(planned, planning.make_plan(site.project, "dev", []).document)
    assert {m for m, e in diff["machines"].items() if e["secrets"]["delivered"]} == {"web1", "web2"}
    assert {m for m, e in diff["machines"].items() if e["status"] != "unchanged"} == {"web1", "web2"}
    assert "> 🔑 new secrets delivered to: `web1`, `web2`" in render_markdown(diff)

    after = site.up()
    assert after.ran() == ["web1-deploy", "web2-deploy"], summary(after)  # exactly the machines sharing it
    for m in ("web1", "web2"):
        assert uploaded(hosts[m].root, shared).read_bytes() == new
    assert web2_own.read_bytes() == web2_value  # its own secret is the same value
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in kept} == kept  # ctl untouched
    assert hosts["ctl"].current_system() == ctl_generation
    assert not uploaded(hosts["ctl"].root, shared).exists()
    assert site.up().ran() == []
    print(f"rotation delivered: {summary(after)}; whole test {time.monotonic() - started:.1f} s")
