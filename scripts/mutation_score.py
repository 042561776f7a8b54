"""Mutation score per module of the core, from mutmut's results in mutants/ (`make mutate`).

    python scripts/mutation_score.py [--survivors] [--fail-under 85] [--mutants DIR] [--equivalent FILE]

score = killed / (killed + survived + no tests), per module and in total. Killed counts mutants a test
failed on, ran out of time on or crashed on. Not counted: mutants the run did not check (outside the
sample, or interrupted) and the equivalent mutants listed in tests/mutation/equivalent.txt: mutants that
change the code but not what it does, so no test can tell them apart. That file has one mutant a line,
its name, then why it is equivalent:

    fleet_sdk.sops.age.x_parse_recipient__mutmut_7  the default is never read: every caller passes it

A listed mutant that a test kills is reported (the list is stale, or the reasoning was wrong).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# mutmut's exit codes (mutmut/stats.py, mutmut 3.8): what each means for the score
KILLED = {1, 3, 36, 37, 24, -24, 152, 255, -9, -11}  # a test failed, a timeout, type check, a crash
SURVIVED = {0}
NO_TESTS = {5, 33}  # no test calls the mutated function
NOT_CHECKED = {None, 2, 34}  # not in this run's sample, interrupted, skipped


@dataclass
class Tally:
    killed: int = 0
    survived: int = 0
    no_tests: int = 0
    equivalent: int = 0
    not_checked: int = 0
    other: int = 0  # "suspicious" and unknown exit codes: counted as not killed
    survivors: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.killed += other.killed
        self.survived += other.survived
        self.no_tests += other.no_tests
        self.equivalent += other.equivalent
        self.not_checked += other.not_checked
        self.other += other.other
        self.survivors += other.survivors

    @property
    def counted(self) -> int:
        return self.killed + self.survived + self.no_tests + self.other

    @property
    def score(self) -> float | None:
        return 100.0 * self.killed / self.counted if self.counted else None


def load_equivalents(path: Path) -> dict[str, str]:
    """Mutant name -> why it is equivalent; a line without a reason is an error."""
    equivalents: dict[str, str] = {}
    if not path.exists():
        return equivalents
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path.name}:{number}: {name} has no reason; say why no test can kill it")
        equivalents[name] = reason.strip()
    return equivalents


def module_of(meta: Path, mutants: Path) -> str:
    """mutants/fleet_sdk/sops/age.py.meta -> fleet_sdk/sops/age.py"""
    return meta.relative_to(mutants).as_posix().removesuffix(".meta")


def tally(mutants: Path, equivalents: dict[str, str]) -> tuple[dict[str, Tally], list[str]]:
    per_module: dict[str, Tally] = {}
    stale: list[str] = []
    seen: set[str] = set()
    for meta in sorted(mutants.glob("fleet_sdk/**/*.py.meta")):
        exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        if not exit_codes:
            continue
        t = per_module.setdefault(module_of(meta, mutants), Tally())
        for name, code in exit_codes.items():
            seen.add(name)
            if code in NOT_CHECKED:
                t.not_checked += 1
            elif name in equivalents:
                t.equivalent += 1
                if code in KILLED:
                    stale.append(f"{name} is listed as equivalent but a test kills it")
            elif code in KILLED:
                t.killed += 1
            elif code in SURVIVED:
                t.survived += 1
                t.survivors.append(name)
            elif code in NO_TESTS:
                t.no_tests += 1
                t.survivors.append(f"{name} (no tests)")
            else:
                t.other += 1
                t.survivors.append(f"{name} (exit code {code})")
    stale += [f"{name} is listed as equivalent but is no mutant (renumbered?)" for name in equivalents.keys() - seen]
    return per_module, stale


def percent(score: float | None) -> str:
    return "-" if score is None else f"{score:5.1f}%"


def table(per_module: dict[str, Tally]) -> tuple[str, Tally]:
    header = ("module", "mutants", "checked", "killed", "survived", "no tests", "equivalent", "score")
    rows: list[tuple[str, ...]] = [header]
    total = Tally()
    for module, t in sorted(per_module.items()):
        total.add(t)
        rows.append(_row(module, t))
    rows.append(_row("total", total))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines), total


def _row(module: str, t: Tally) -> tuple[str, ...]:
    mutants = t.counted + t.equivalent + t.not_checked
    checked = t.counted + t.equivalent
    survived = t.survived + t.other
    return (
        module,
        str(mutants),
        str(checked),
        str(t.killed),
        str(survived),
        str(t.no_tests),
        str(t.equivalent),
        percent(t.score),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mutants", type=Path, default=ROOT / "mutants", help="mutmut's folder (mutants/)")
    parser.add_argument("--equivalent", type=Path, default=ROOT / "tests" / "mutation" / "equivalent.txt")
    parser.add_argument("--survivors", action="store_true", help="list the mutants no test kills")
    parser.add_argument("--fail-under", type=float, default=None, help="exit 1 when the total score is lower")
    args = parser.parse_args(argv)

    if not args.mutants.is_dir():
        print(f"no mutmut results in {args.mutants}: run `make mutate` first", file=sys.stderr)
        return 2
    per_module, stale = tally(args.mutants, load_equivalents(args.equivalent))
    text, total = table(per_module)
    print(text)
    if args.survivors:
        print("\nsurvivors (not killed, not listed as equivalent):")
        for _, t in sorted(per_module.items()):
            for name in t.survivors:
                print(f"  {name}")
    for warning in stale:
        print(f"warning: {warning}", file=sys.stderr)
    if args.fail_under is not None and (total.score is None or total.score < args.fail_under):
        print(f"total mutation score {percent(total.score).strip()} is under {args.fail_under}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
