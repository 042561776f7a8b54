"""DiskLayout as the disko engine offers it: the spec's pure layout (fleet_sdk.spec.disks) that can
also be read from a Nix file, evaluated with real Nix."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fleet_sdk.errors import DiskoError, Problem
from fleet_sdk.spec.disks import layout as spec_layout
from fleet_sdk.spec.disks.layout import BootMode

if TYPE_CHECKING:
    from fleet_sdk.tools.runner import Runner

__all__ = ["BootMode", "DiskLayout"]


class DiskLayout(spec_layout.DiskLayout):
    """`disko.devices`: the six collections of top-level devices, keyed by the user's names.

    The model, `from_disko`, `to_disko`, `render`, `check`, `partition_plan` and `walk` are the spec's
    (`fleet_sdk.spec.disks.DiskLayout`, which `Machine.disks` holds); this class adds `from_nix_file`."""

    @classmethod
    def from_nix_file(cls, path: Path, attr: str | None = None, runner: Runner | None = None) -> DiskLayout:
        """Evaluate a Nix file (e.g. a machine's disko.nix) with real Nix and read its devices.

        `attr` selects an attribute path (default: `disko.devices` when present, else the value)."""
        from fleet_sdk.tools import nix
        from fleet_sdk.tools.runner import LOCAL

        value = nix.eval_file(LOCAL if runner is None else runner, path, attr)
        if attr is None and isinstance(value, dict) and isinstance(value.get("disko"), dict):
            value = value["disko"].get("devices", {})
        if not isinstance(value, dict):
            raise DiskoError([Problem(attr or "disko.devices", "does not evaluate to an attribute set")], str(path))
        return cls.from_disko(value, str(path))
