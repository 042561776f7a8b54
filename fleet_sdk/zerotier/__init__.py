"""ZeroTier: identities, network ids and member addresses (identity), the clan service's validation
and generators (service), and admitting members on the controller (admission)."""

from fleet_sdk.errors import ZeroTierError
from fleet_sdk.zerotier.identity import Identity, member_id, network_id, rfc4193, sixplane

__all__ = ["Identity", "ZeroTierError", "member_id", "network_id", "rfc4193", "sixplane"]
