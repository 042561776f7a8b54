"""`python -m fleet_sdk` is the `fleet` command (the graph's steps run it this way)."""

from fleet_sdk.cli import main

raise SystemExit(main())
