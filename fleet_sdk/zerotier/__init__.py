"""ZeroTier: identities, network ids and member addresses (identity), the clan service's validation
and generators (service), and admitting members on the controller (admission).

The names of `identity` load on first use: it imports numpy (and numba, when installed), a third of
a second that every `fleet` command would otherwise pay, since `import fleet_sdk` registers the
service, which lives in this package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet_sdk.errors import ZeroTierError

if TYPE_CHECKING:
    from fleet_sdk.zerotier.identity import Identity, member_id, network_id, rfc4193, sixplane

__all__ = ["Identity", "ZeroTierError", "member_id", "network_id", "rfc4193", "sixplane"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fleet_sdk.zerotier import identity

        return getattr(identity, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
