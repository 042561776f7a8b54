"""Deploy targets `[user@]host[:port]`: parsed strictly, since they reach ssh's argv and commands."""

from __future__ import annotations

import pytest

from fleet_sdk.errors import FleetError
from fleet_sdk.targets import TargetHost
from fleet_sdk.tools import ssh


@pytest.mark.parametrize(
    ("text", "user", "host", "port", "shown"),
    [
        ("root@cinnabar.zt", "root", "cinnabar.zt", None, "root@cinnabar.zt"),
        ("crs58@stibnite.zt", "crs58", "stibnite.zt", None, "crs58@stibnite.zt"),
        ("cameron@argentum.zt", "cameron", "argentum.zt", None, "cameron@argentum.zt"),
        ("cinnabar.zt", "root", "cinnabar.zt", None, "root@cinnabar.zt"),
        ("203.0.113.7:2222", "root", "203.0.113.7", 2222, "root@203.0.113.7:2222"),
        ("admin@[fd00::1]:22", "admin", "fd00::1", 22, "admin@[fd00::1]:22"),
        ("admin@[fd00::1]", "admin", "fd00::1", None, "admin@fd00::1"),
        ("fddb:4344:343b:14b9:399:93db:4344:343b", "root", "fddb:4344:343b:14b9:399:93db:4344:343b", None, None),
    ],
)
def test_targets_parse(text: str, user: str, host: str, port: int | None, shown: str | None) -> None:
    target = TargetHost.parse(text)
    assert (target.user, target.host, target.port) == (user, host, port)
    assert str(target) == (shown or f"root@{host}")
    assert TargetHost.parse(str(target)) == target  # what we print parses back


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "is empty"),
        ("@cinnabar.zt", "empty user"),
        ("ro ot@cinnabar.zt", "is not a user name"),
        ("-oProxyCommand=sh@x", "is not a user name"),
        ("root@", "has no host"),
        ("root@cinnabar.zt;reboot", "not a host name or IP address"),
        ("root@$(reboot)", "not a host name or IP address"),
        ("root@-oProxyCommand=x", "not a host name or IP address"),
        ("root@cinnabar.zt:0", "port '0'"),
        ("root@cinnabar.zt:65536", "port '65536'"),
        ("root@cinnabar.zt:22x", "port '22x'"),
        ("root@[cinnabar.zt]:22", "is not an IPv6 address"),
        ("root@[fd00::1]x", "is written [addr] or [addr]:port"),
        ("root@fd00::zz", "is not an IPv6 address"),
    ],
)
def test_bad_targets_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]").replace("$", r"\$")):
        TargetHost.parse(text)


def test_ssh_argv_carries_the_user_and_port_and_ends_options() -> None:
    argv = ssh.argv("crs58@[fd00::2]:2222")
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[-4:] == ["--", "crs58@fd00::2", "sh", "-s"]
    with pytest.raises(FleetError, match="target host: 'root@a;b'"):
        ssh.argv("root@a;b")
