"""Which computed inputs of a resource a change makes unknown before the apply, and which updates
happen with the machine off (review.diff).

A plan records, per input, the resources whose outputs feed it (`property_dependencies`, Pulumi's
propertyDependencies). An input computed in both plans is unknown before the apply when one of them
gets new outputs: it is created or replaced (a new id), or it is a command that runs again (updated:
pulumi-command runs `create` again). A cloud resource updated in place keeps its id and addresses, so
a renamed or resized server's install step, whose trigger is the server's id, does not run again;
but a GCP instance stopped for an update (REBOOTING) releases its ephemeral external address, so what
reads its address changes, while what carries its id (the steps' `triggers`) does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet_sdk.catalog import gcp, hetzner
from fleet_sdk.review.paths import Path, any_contains, parse_path

if TYPE_CHECKING:
    from fleet_sdk.review.diff import Change

COMMAND = "command:local:Command"

# per resource type, the properties its cloud changes in place with the machine off, and what the
# preview says of such an update (the machine's danger flag is `reboot`, review.danger)
REBOOTING: dict[str, tuple[str, ...]] = {**hetzner.REBOOTING, **gcp.REBOOTING}
REBOOT_NOTES = {
    # the hcloud provider's keep_disk is not set (graph.clouds.hetzner): the disk grows with the type
    hetzner.SERVER_RESOURCE: "resized in place: the server is powered off and on again; its disk grows with "
    "the type, so it cannot go back to a type with a smaller disk",
    gcp.INSTANCE_RESOURCE: "changed in place: the instance is stopped and started again "
    "(allow_stopping_for_update); its ephemeral external address changes",
}


def fed_unknown(r: dict[str, Any], path: Path, changes: dict[str, Change], children: dict[str, list[str]]) -> bool:
    """Whether the input at `path` of `r`, computed in both plans, is unknown before the apply: a
    resource feeding it (its `property_dependencies`; in a document without them, any dependency
    created or replaced) gets new outputs. `changes`: those of the resources compared so far."""
    recorded = r.get("property_dependencies")
    if recorded is None:  # an older document: which input a dependency feeds is not recorded
        return any(
            c is not None and c.op in ("create", "replace") for c in map(changes.get, r.get("dependencies") or ())
        )
    prop = str(path[0]) if path else ""
    identity = r["type"] == COMMAND and prop == "triggers"
    todo, seen = list(recorded.get(prop) or ()), set()
    while todo:
        urn = todo.pop()
        if urn in seen:
            continue
        seen.add(urn)
        todo += children.get(urn, [])  # a component feeds what its resources output
        change = changes.get(urn)
        if change is None or new_outputs(change) or (not identity and moves_address(change)):
            return True  # None: not yet compared (a component's resource), so not known to be kept
    return False


def reboots(change: Change) -> bool:
    """An update of a property its cloud changes with the machine off (the catalogs' REBOOTING)."""
    rebooting = REBOOTING.get(change.type, ())
    return change.op == "update" and any(any_contains(rebooting, parse_path(p["path"])) for p in change.paths)


def new_outputs(change: Change | None) -> bool:
    """The resource's outputs are new: it is created or replaced, or it is a command that runs again."""
    if change is None:
        return False
    return change.op in ("create", "replace") or (change.op == "update" and change.type == COMMAND)


def moves_address(change: Change) -> bool:
    """An update that stops and starts a GCP instance: its ephemeral external address changes."""
    return change.type == gcp.INSTANCE_RESOURCE and reboots(change)
