"""The names of a fixed sample of the core's mutants, for `mutmut run` (`make mutate`).

    python scripts/mutation_sample.py PERCENT [--seed SEED]

The whole core is about 5,000 mutants, more than an hour on two cores, so `make mutate` checks a sample:
in each module, the PERCENT of its mutants whose sha256(seed + name) is lowest. The same seed and code
give the same sample (a mutant stays in it while its name does); another seed gives another sample.
PERCENT 100 prints nothing, and `mutmut run` with no names checks every mutant. The mutants come from
mutmut's own generator over the files [tool.mutmut] only_mutate names, so the names are mutmut's.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import math
import sys
from pathlib import Path

from mutmut.configuration import config
from mutmut.mutation.file_mutation import mutate_file_contents
from mutmut.utils.format_utils import get_mutant_name

ROOT = Path(__file__).resolve().parent.parent


def mutants_by_module() -> dict[Path, list[str]]:
    """Every mutant's name, per source file that [tool.mutmut] mutates (run from the repository root)."""
    cfg = config()
    found: dict[Path, list[str]] = {}
    for source in cfg.source_paths:
        for path in sorted(Path(source).rglob("*.py")):
            if any(fnmatch.fnmatch(str(path), p) for p in cfg.only_mutate) and cfg.should_mutate(path):
                mutated = mutate_file_contents(str(path), path.read_text())
                found[path] = [get_mutant_name(path, name) for name in mutated.mutant_names]
    return found


def sample(names: list[str], percent: float, seed: str) -> list[str]:
    """The `percent` of `names` (at least one) that sort first by sha256(seed + name)."""
    count = max(1, math.ceil(len(names) * percent / 100)) if names else 0
    return sorted(names, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("percent", type=float, help="share of each module's mutants to check (100: all)")
    parser.add_argument("--seed", default="1", help="another seed picks another sample")
    args = parser.parse_args(argv)
    if not 0 < args.percent <= 100:
        parser.error("PERCENT is in (0, 100]")
    if args.percent == 100:
        return 0
    chosen: list[str] = []
    for path, names in mutants_by_module().items():
        picked = sample(names, args.percent, args.seed)
        print(f"{path}: {len(picked)} of {len(names)} mutants", file=sys.stderr)
        chosen += picked
    print("\n".join(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
