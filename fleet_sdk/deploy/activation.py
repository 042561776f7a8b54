"""The watched activation (reference/deploy.md §8): arm the watchdog, run the new system detached from
ssh, judge its exit code, confirm over a new connection, disarm, check health, and only then make it
the boot default. Anything else rolls back to the previous system, by the engine when it can reach
the machine, by the watchdog on the machine when it cannot.

switch-to-configuration's exit codes (§6): 0 ok; 4 units failed (policy `on_unit_failure`); 2 the
activation script failed; other codes fatal. "Pre-switch checks failed" (a switch inhibitor) changes
nothing and makes the new system the boot default only: reboot_required.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fleet_sdk.deploy.commands import DeployCommands, needs_reboot
from fleet_sdk.deploy.model import DeployRequest, DeployResult, Facts, Status
from fleet_sdk.deploy.model import generation as profile_generation
from fleet_sdk.deploy.reboot import reboot
from fleet_sdk.deploy.remote import Remote
from fleet_sdk.deploy.settings import DeploySettings
from fleet_sdk.errors import DeployError

INHIBITED = "Pre-switch checks failed"
_FAILED_UNITS = re.compile(r"the following units failed: (.+)")


@dataclass(frozen=True)
class Outcome:
    """How a detached command ended: its exit code and output when it did, else why not: `hung`
    (the machine answers, the command runs past switch_timeout), `lost` (no answer until the
    watchdog fired) or `late` (it answers, but the watchdog fired first)."""

    rc: int | None
    output: str = ""
    why: Literal["done", "hung", "lost", "late"] = "done"


def failed_units(output: str) -> tuple[str, ...]:
    """The units switch-to-configuration names in `warning: the following units failed: a, b`."""
    found = _FAILED_UNITS.search(output)
    return tuple(u.strip() for u in found.group(1).split(",") if u.strip()) if found else ()


def excerpt(output: str, lines: int = 8) -> str:
    text = output.strip().splitlines()[-lines:]
    return (":\n  " + "\n  ".join(text)) if text else ""


@dataclass
class Activation:
    request: DeployRequest
    settings: DeploySettings
    remote: Remote
    commands: DeployCommands
    facts: Facts
    parts: dict[str, str]  # the new system's kernel, initrd, kernel-modules
    say: Callable[[str], None]
    armed_at: float = 0.0

    @property
    def what(self) -> str:
        return "activate" if self.request.machine_class == "darwin" else "switch-to-configuration test"

    def result(
        self,
        status: Status,
        current: str,
        error: str | None = None,
        *,
        generation: int | None = None,
        reboot_required: bool = False,
        rolled_back: bool = False,
        failed_units: tuple[str, ...] = (),
        failed_check: str | None = None,
    ) -> DeployResult:
        return DeployResult(
            self.request.machine,
            status,
            self.commands.previous,
            current,
            self.facts.generation if generation is None else generation,
            reboot_required=reboot_required,
            rolled_back=rolled_back,
            failed_units=failed_units,
            failed_check=failed_check,
            error=f"machine {self.request.machine}: {error}" if error else None,
        )

    def run(self) -> DeployResult:
        self.say("arming the watchdog")
        self.remote.run(self.commands.arm, what="arming the watchdog")
        self.armed_at = time.monotonic()
        self.say(f"activating ({self.what})")
        started = self.remote.attempt(self.commands.switch)
        if started is not None and started.returncode != 0:
            self.disarm()
            text = (started.stderr or started.stdout).decode(errors="replace")
            raise DeployError(self.request.machine, f"starting {self.what} failed{excerpt(text)}; nothing changed")
        return self.judge(self.wait(self.commands.switch_dir))

    def wait(self, directory: str) -> Outcome:
        """Poll a detached command until its exit code. Answering without one past switch_timeout is a
        hang; no answer at all is waited out until the watchdog fires (the machine may come back)."""
        hung_at = time.monotonic() + self.settings.switch_timeout
        fires_at = self.armed_at + self.settings.watchdog_seconds
        while True:
            polled = self.remote.attempt(self.commands.poll(directory))
            now = time.monotonic()
            if now >= fires_at:  # whatever the poll says, the watchdog has had its turn
                return Outcome(None, why="lost" if polled is None else "late")
            if polled is not None:
                first, _, rest = polled.text.partition("\n")
                if first.startswith("rc=") and first[3:].strip().lstrip("-").isdigit():
                    return Outcome(int(first[3:]), rest)
                if now >= hung_at:
                    return Outcome(None, why="hung")
            time.sleep(self.settings.poll_interval)

    def judge(self, outcome: Outcome) -> DeployResult:
        if outcome.why == "lost":
            return self.await_watchdog("lost ssh during the activation")
        if outcome.why == "late":
            return self.await_watchdog(f"the activation outlasted the watchdog ({self.settings.watchdog_seconds} s)")
        if outcome.rc is None:
            self.remote.attempt(self.commands.kill)
            return self.roll_back(f"{self.what} did not end within {self.settings.switch_timeout:g} s (stopped)")
        if INHIBITED in outcome.output:
            self.say("a switch inhibitor refused the switch: the new system becomes the boot default")
            self.disarm()
            return self.commit(self.commands.previous, reboot_required=True)
        units = failed_units(outcome.output)
        if outcome.rc == 4 and self.settings.on_unit_failure == "keep":
            self.say(f"units failed and are kept (on_unit_failure=keep): {', '.join(units) or '?'}")
        elif outcome.rc != 0:
            reason = f"{self.what} failed with exit {outcome.rc}{excerpt(outcome.output)}"
            return self.roll_back(reason, units=units)
        return self.confirm(units)

    def confirm(self, units: tuple[str, ...]) -> DeployResult:
        self.say("confirming over a new ssh connection")
        current = self.read_current(time.monotonic() + self.settings.confirm_timeout)
        if current is None:
            return self.await_watchdog(f"no new ssh connection within {self.settings.confirm_timeout:g} s")
        if current != self.commands.system:
            return self.roll_back(
                f"after {self.what} it runs {current or 'no system'}, not {self.commands.system}", units
            )
        if not self.disarm():
            return self.await_watchdog("the watchdog fired before the confirmation")
        for what, argv in self.commands.health:
            checked = self.remote.attempt(argv)
            if checked is None or checked.returncode != 0:
                detail = excerpt((checked.stderr or checked.stdout).decode(errors="replace")) if checked else ""
                return self.roll_back(f"health check failed: {what}{detail}", units, failed_check=what)
        return self.commit(self.commands.system, units=units)

    def read_current(self, deadline: float) -> str | None:
        """/run/current-system over new connections until one answers or `deadline`."""
        while True:
            read = self.remote.attempt(self.commands.confirm)
            if read is not None and read.returncode == 0:
                return read.text.strip()
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.settings.poll_interval)

    def disarm(self) -> bool:
        """Remove the canary; False when it was gone: the watchdog fired."""
        removed = self.remote.attempt(self.commands.disarm)
        return removed is not None and removed.returncode == 0

    def commit(self, current: str, units: tuple[str, ...] = (), reboot_required: bool = False) -> DeployResult:
        self.say("making it the boot default (nix-env --set, boot entry)")
        done = self.remote.attempt(self.commands.commit)
        if done is None or done.returncode != 0:
            why = excerpt((done.stderr or done.stdout).decode(errors="replace")) if done else " (no answer)"
            return self.result(
                "failed", current, f"it runs {current}, but making it the boot default failed{why}; a reboot "
                f"would start {self.commands.previous or 'the previous system'}: deploy again", failed_units=units,
            )  # fmt: skip
        link = next((ln[13:] for ln in done.text.splitlines() if ln.startswith("profile_link=")), "")
        nixos = self.request.machine_class == "nixos"
        need = reboot_required or (nixos and needs_reboot(self.facts, self.parts))
        number = profile_generation(link)
        result = self.result("deployed", current, generation=number, reboot_required=need, failed_units=units)
        if need and self.settings.reboot == "if-needed":
            return reboot(self.remote, self.commands, self.settings, result, self.say)
        return result

    def roll_back(self, reason: str, units: tuple[str, ...] = (), failed_check: str | None = None) -> DeployResult:
        previous = self.commands.previous
        if self.commands.rollback is None:
            self.disarm()
            now = self.read_current(time.monotonic()) or ""
            return self.result("failed", now, f"{reason}; there is no previous system to go back to",
                               failed_units=units, failed_check=failed_check)  # fmt: skip
        self.say(f"rolling back to {previous}")
        started = self.remote.attempt(self.commands.rollback)
        if started is not None and started.returncode == 0:
            outcome = self.wait(self.commands.rollback_dir)
        else:
            outcome = Outcome(None, why="lost" if started is None else "done")
        if outcome.why in ("lost", "late"):
            return self.await_watchdog(f"{reason}; the rollback did not end before the watchdog fired")
        self.disarm()
        current = self.read_current(time.monotonic() + self.settings.confirm_timeout) or ""
        if current == previous:
            return self.result("rolled-back", current, f"{reason}; rolled back to {previous}", rolled_back=True,
                               failed_units=units, failed_check=failed_check)  # fmt: skip
        return self.result(
            "failed", current, f"{reason}; the rollback (exit {outcome.rc}) did not restore {previous}: it runs "
            f"{current or 'an unknown system'}; check the machine", failed_units=units, failed_check=failed_check,
        )  # fmt: skip

    def await_watchdog(self, reason: str) -> DeployResult:
        """Out of contact inside the window: the watchdog on the machine decides. Wait until it fired
        and restored the previous system (or the deadline), then report what the machine runs."""
        fires_at = self.armed_at + self.settings.watchdog_seconds
        until = fires_at + self.settings.switch_timeout + self.settings.confirm_timeout
        self.say(f"{reason}; waiting for the watchdog (fires in {max(0.0, fires_at - time.monotonic()):.0f} s)")
        state: dict[str, str] | None = None
        while True:
            polled = self.remote.attempt(self.commands.state)
            if polled is not None and polled.returncode == 0:
                state = dict(ln.partition("=")[::2] for ln in polled.text.splitlines() if "=" in ln)
                if "restored" in state or not ({"armed", "fired"} & state.keys()):
                    break
            if time.monotonic() >= until:
                break
            time.sleep(self.settings.poll_interval)
        previous = self.commands.previous
        if state is None:
            return self.result("failed", "", f"{reason}; it has not answered since. Its watchdog restores "
                               f"{previous} {self.settings.watchdog_seconds} s after the activation started, "
                               "if the machine runs: check it")  # fmt: skip
        current = state.get("current", "")
        if "fired" in state and current == previous:
            return self.result("rolled-back", current, f"{reason}; the watchdog restored {previous}", rolled_back=True)
        fired = f"fired (restore exit {state.get('restored', '?')})" if "fired" in state else "did not fire"
        return self.result("failed", current, f"{reason}; it runs {current or 'no system'} and the watchdog "
                           f"{fired}; check the machine")  # fmt: skip
