"""Name rules shared by machines, tags and instances."""

from __future__ import annotations

import re

# RFC 1123 label, lower case: a machine name is also its hostname and its Hetzner server name.
HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# GCE instance names must also start with a letter.
GCE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
# clan's inventory meta name, tag and instance names
IDENTIFIER = re.compile(r"^[A-Za-z0-9_-]+$")
# Hetzner label keys (optional prefix) and values
LABEL_KEY = re.compile(r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")


def hostname_problem(name: str) -> str | None:
    if HOSTNAME.match(name):
        return None
    return (
        f"{name!r} is not a valid hostname: use 1-63 lower-case letters, digits and '-', "
        "not starting or ending with '-'"
    )
