"""The exception tree. Every message names what it is about and says what to do.

FleetError
 ├── SpecError          a fleet declaration that cannot work (names machine / field)
 ├── ConfigError        stack configuration (Pulumi.<stack>.yaml, -c overrides)
 └── StackError         a stack program that cannot be loaded
"""

from __future__ import annotations


class FleetError(Exception):
    """Root of every error fleet_sdk raises on purpose; the CLI prints these without a traceback."""


class SpecError(FleetError):
    """A fleet declaration that is refused before anything is created.

    Holds one or more problems, each already naming the machine or instance and the field.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ConfigError(FleetError):
    """Stack configuration that is missing or malformed."""


class StackError(FleetError):
    """A stack program under stacks/ that is missing or does not build a Fleet."""
