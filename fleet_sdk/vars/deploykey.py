"""The fleet's shared deploy key: its public half is what the clouds let in first.

The vars capability generates it as the shared generator `deploy-key`; the graph only reads the
public value from the fleet repository (clan layout: vars/shared/<gen>/<file>/value).
"""

from __future__ import annotations

from pathlib import Path

from fleet_sdk.errors import FleetError

DEPLOY_KEY_PUBLIC = Path("vars/shared/deploy-key/id_ed25519.pub/value")


def read_public_key(repo: Path) -> str | None:
    """The deploy key's public line without its trailing newline, or None when not yet generated."""
    path = repo / DEPLOY_KEY_PUBLIC
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    line = text.strip()
    if not line.startswith("ssh-ed25519 "):
        raise FleetError(
            f"{path}: not an ssh-ed25519 public key; regenerate it with `fleet vars generate -g deploy-key`"
        )
    return line


def missing_message(repo: Path) -> str:
    return (
        f"the fleet deploy key is not generated yet ({repo / DEPLOY_KEY_PUBLIC} is missing): "
        "run `fleet vars generate` in the fleet repository before `pulumi up`"
    )
