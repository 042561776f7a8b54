"""FakeTargets, what the `target_hosts` pytest fixture hands a test: many targets, started at once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fleet_sdk.testing.targethost.host import FakeTarget
from fleet_sdk.testing.targethost.sshd import keygen


class FakeTargets:
    """The `target_hosts` fixture: makes targets under one folder and stops them all at the end.

    `target_hosts(2)` starts two at once (named t1, t2, …); `target_hosts.new("web1", os_kind="debian")`
    one; both take FakeTarget's keyword arguments. The targets share one client key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hosts: dict[str, FakeTarget] = {}
        self._key: Path | None = None

    @property
    def client_key(self) -> Path:
        if self._key is None:
            self._key = keygen(self.root / "client" / "id_ed25519")
        return self._key

    def new(self, name: str | None = None, **options: Any) -> FakeTarget:
        """One target, started."""
        return self._start([name or self._next_name(0)], options)[0]

    def __call__(self, n: int = 1, **options: Any) -> list[FakeTarget]:
        """`n` targets, started at once."""
        return self._start([self._next_name(i) for i in range(n)], options)

    def _next_name(self, i: int) -> str:
        return f"t{len(self.hosts) + i + 1}"

    def _start(self, names: Sequence[str], options: dict[str, Any]) -> list[FakeTarget]:
        hosts = []
        options = {"client_key": self.client_key, **options}
        for name in names:
            if name in self.hosts:
                raise ValueError(f"a target named {name!r} exists already")
            host = FakeTarget(self.root / name, name=name, **options)
            self.hosts[name] = host
            hosts.append(host)
        for host in hosts:  # every boot begins before the first wait, so they overlap
            host.launch()
        for host in hosts:
            host.wait_ready()
        return hosts

    def __iter__(self) -> Iterator[FakeTarget]:
        return iter(list(self.hosts.values()))

    def __getitem__(self, name: str) -> FakeTarget:
        return self.hosts[name]

    def known_hosts(self) -> str:
        """known_hosts lines for every target."""
        return "".join(h.known_hosts_line() + "\n" for h in self.hosts.values())

    def stop_all(self) -> None:
        """Stops every target, even when some fail to stop, then raises the first failure."""
        errors: list[BaseException] = []
        for host in self.hosts.values():
            try:
                host.stop()
            except BaseException as e:
                errors.append(e)
        if errors:
            raise errors[0]
