"""Pure, typed declarations of a fleet. No I/O and no Pulumi: constructing one validates it.

Bad input raises `fleet_sdk.errors.SpecError` whose problems each name the machine or instance and
the field, or pydantic's `ValidationError` for values of the wrong type.
"""

from fleet_sdk.spec.fleet import PREDEFINED_TAGS, Fleet, effective_tags
from fleet_sdk.spec.generators import Generator, GeneratorFile, Prompt
from fleet_sdk.spec.hosts import GcpHost, HetznerHost, Host
from fleet_sdk.spec.machine import Machine, MachineClass
from fleet_sdk.spec.services import Role, ServiceInstance

__all__ = [
    "PREDEFINED_TAGS",
    "Fleet",
    "GcpHost",
    "Generator",
    "GeneratorFile",
    "HetznerHost",
    "Host",
    "Machine",
    "MachineClass",
    "Prompt",
    "Role",
    "ServiceInstance",
    "effective_tags",
]
