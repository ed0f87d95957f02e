"""Time nbgrader's autograding of each solution notebook (budget: 60 s each on 2 cores).

Run from the repository root: ``.venv/bin/python benchmarks/bench_autograde.py``.
It grades in a temporary course directory and leaves the repository untouched.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from course import ASSIGNMENTS, new_course, run, solved, submit  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        course = new_course(Path(tmp) / "course")
        print(f"{'assignment':<28}{'generate s':>12}{'autograde s':>13}")
        for aid in ASSIGNMENTS:
            t0 = time.perf_counter()
            run("nbgrader", "generate_assignment", aid, cwd=course)
            t1 = time.perf_counter()
            submit(course, "solution", aid, solved(aid))
            run("nbgrader", "autograde", aid, cwd=course)
            t2 = time.perf_counter()
            print(f"{aid:<28}{t1 - t0:>12.1f}{t2 - t1:>13.1f}")


if __name__ == "__main__":
    main()
