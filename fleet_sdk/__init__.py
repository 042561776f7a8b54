"""fleet_sdk: a fleet of Nix machines as one Pulumi graph.

Importing the package (or `fleet_sdk.spec`) does not import Pulumi; only `fleet_sdk.graph`,
`fleet_sdk.testing` and the `fleet plan` command do.
"""

__version__ = "0.1.0"
