"""Time the autograding of each solution notebook, with and without isolation.

Run from the repository root: ``.venv/bin/python benchmarks/bench_autograde.py [--repeats 3]``.
It grades in a temporary course directory and leaves the repository untouched.
Budget: 60 s per notebook on 2 cores; isolation should add at most 20 %.

Three ways, each the median of ``--repeats`` single-student ``nbgrader autograde`` runs:

- ``nbgrader``: nbgrader's own execution step (one kernel runs everything; no protection);
- ``two-process``: lmkit's grader with ``--SandboxedExecute.sandbox=False`` (tests in the
  grading kernel, the submission in a worker process, no sandbox);
- ``sandboxed``: the course's configuration (the worker inside bubblewrap).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from course import ASSIGNMENTS, new_course, run, solved, submit  # noqa: E402

PLAIN_NBGRADER = """
from nbgrader.preprocessors import Execute
c.Autograde.autograde_preprocessors = [Execute] + c.Autograde.autograde_preprocessors[1:]
"""
MODES = {"nbgrader": [], "two-process": ["--SandboxedExecute.sandbox=False"], "sandboxed": []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="gradings per notebook and way; the median is printed")
    parser.add_argument("--only", choices=list(ASSIGNMENTS), help="time one assignment")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        courses = {mode: new_course(Path(tmp) / mode) for mode in MODES}
        with open(courses["nbgrader"] / "nbgrader_config.py", "a") as f:
            f.write(PLAIN_NBGRADER)
        print(f"{'assignment':<28}" + "".join(f"{m + ' s':>15}" for m in MODES) + f"{'isolation +%':>14}")
        for aid in [args.only] if args.only else ASSIGNMENTS:
            medians = {}
            for mode, course in courses.items():
                run("nbgrader", "generate_assignment", aid, cwd=course)
                submit(course, "solution", aid, solved(aid))
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    run("nbgrader", "autograde", aid, "--force", *MODES[mode], cwd=course)
                    times.append(time.perf_counter() - t0)
                medians[mode] = statistics.median(times)
            extra = 100 * (medians["sandboxed"] / medians["two-process"] - 1)
            print(f"{aid:<28}" + "".join(f"{medians[m]:>15.1f}" for m in MODES) + f"{extra:>+14.0f}")


if __name__ == "__main__":
    main()
