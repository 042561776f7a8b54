"""Pure, typed declarations of a fleet. No I/O and no Pulumi: constructing one validates it.

Hosts are any `Host` subclass (HetznerHost and GcpHost built in; a cloud plug-in adds its own) and
services come from a registry (`register_service`): the spec names no concrete cloud or service engine.

Bad input raises `fleet_sdk.errors.SpecError` whose problems each name the machine or instance and
the field, or pydantic's `ValidationError` for values of the wrong type.
"""

from fleet_sdk.spec.deploy import Deploy, HealthChecks
from fleet_sdk.spec.fleet import PREDEFINED_TAGS, Fleet, effective_tags
from fleet_sdk.spec.generators import Generator, GeneratorFile, Prompt
from fleet_sdk.spec.hosts import GcpHost, HetznerHost, Host
from fleet_sdk.spec.machine import Machine, MachineClass
from fleet_sdk.spec.services import Role, ServiceDefinition, ServiceInstance, register_service

__all__ = [
    "PREDEFINED_TAGS",
    "Deploy",
    "Fleet",
    "GcpHost",
    "Generator",
    "GeneratorFile",
    "HealthChecks",
    "HetznerHost",
    "Host",
    "Machine",
    "MachineClass",
    "Prompt",
    "Role",
    "ServiceDefinition",
    "ServiceInstance",
    "effective_tags",
    "register_service",
]
