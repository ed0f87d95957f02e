"""Synthetic submissions of one assignment, for the grading benchmark (``bench_grading.py``).

``python benchmarks/make_submissions.py COURSE AID --n 300`` writes ``COURSE/submitted/sNNN/AID/``
for N students: a seeded mix of correct notebooks, partly wrong ones (a random
set of the classic mistakes of ``tests/submissions.py``, each costing its own
task) and broken ones (the untouched release, a syntax error, an import that
fails, malformed JSON).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import submissions as S  # noqa: E402
from course import ASSIGNMENTS, replace_in_cell, solved, submit  # noqa: E402

MIX = {"correct": 0.5, "partly wrong": 0.3, "broken": 0.2}


def broken(aid: str, rng: random.Random):
    """One of four ways a notebook arrives broken."""
    cell, fn, _ = S.tasks(aid)[0]
    return rng.choice(
        [
            lambda: S.blank(aid),
            lambda: replace_in_cell(solved(aid), cell, f"def {fn}(", f"def {fn}(("),
            lambda: replace_in_cell(solved(aid), cell, f"def {fn}(", f"import lmkit.no_such_module\n\n\ndef {fn}("),
            lambda: '{"cells": [',
        ]
    )()


def partly_wrong(aid: str, rng: random.Random):
    """A random non-empty set of the classic mistakes of one of the assignment's mutants
    (mistakes of different mutants may edit the same line)."""
    edits = S.MUTANTS[aid][rng.choice(sorted(S.MUTANTS[aid]))]
    nb = solved(aid)
    for cell, old, new, _ in rng.sample(edits, rng.randint(1, len(edits))):
        replace_in_cell(nb, cell, old, new)
    return nb


def make(course: Path, aid: str, n: int, seed: int = 0) -> Counter:
    """Write ``n`` submissions of ``aid`` into ``course``; return how many of each kind."""
    if aid not in ASSIGNMENTS:
        raise ValueError(f"unknown assignment {aid!r}; one of {', '.join(ASSIGNMENTS)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng, kinds = random.Random(seed), Counter()
    for i in range(n):
        kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
        nb = {"correct": lambda: solved(aid), "partly wrong": lambda: partly_wrong(aid, rng), "broken": lambda: broken(aid, rng)}[kind]()
        submit(course, f"s{i:03d}", aid, nb)
        kinds[kind] += 1
    return kinds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("course", type=Path, help="the course directory (submissions go to its submitted/)")
    p.add_argument("assignment", help="the assignment, e.g. 00_bag_of_words")
    p.add_argument("--n", type=int, default=300, help="number of students")
    p.add_argument("--seed", type=int, default=0, help="seed of the mix")
    args = p.parse_args()
    try:
        kinds = make(args.course, args.assignment, args.n, args.seed)
    except ValueError as err:
        p.error(str(err))
    print(", ".join(f"{k}: {v}" for k, v in kinds.items()))


if __name__ == "__main__":
    main()
