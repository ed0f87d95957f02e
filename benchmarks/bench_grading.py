"""Grade a class serially and in parallel: students per minute, the ratio, peak memory, equal gradebooks.

Run from the repository root:
``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_grading.py [--n 300] [--workers 2]``.
It makes ``--n`` synthetic submissions of one assignment (``make_submissions.py``),
copies the course, grades one copy with ``nbgrader autograde AID`` and the other
with ``python -m lmkit.grader.parallel AID --workers W``, then checks that both
gradebooks, autograded notebooks, CSV exports and feedback pages are equal.
Everything happens in a temporary directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from make_submissions import make  # noqa: E402

from course import BIN, ENV, new_course, run  # noqa: E402
from lmkit.grader.parallel import autograded_notebooks, gradebook_rows  # noqa: E402


def timed(argv: list[str], cwd: Path) -> tuple[float, float, int, float]:
    """Run a command; return (seconds, peak memory in MiB of it and all its descendants, exit status, highest
    1-minute load average). The peak is the largest sum of resident sets seen in samples 0.2 s apart (shared
    pages count once per process); the load shows whether other work shared the cores."""
    peak, load, done = 0, 0.0, threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def sample() -> None:
        nonlocal peak, load
        root = psutil.Process(proc.pid)
        while not done.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                return
            peak, load = max(peak, total), max(load, os.getloadavg()[0])
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return seconds, peak / 2**20, code, load


def outputs(course: Path, aid: str) -> dict:
    """What an instructor gets from grading: gradebook rows, autograded notebooks, the CSV export, feedback pages."""
    run("nbgrader", "export", "--to", str(course / "grades.csv"), cwd=course)
    run("nbgrader", "generate_feedback", aid, cwd=course, check=False)  # failed submissions have none, as in a serial run
    return {
        "gradebook": gradebook_rows(course, aid),
        "autograded": autograded_notebooks(course, aid),
        "csv": sorted(map(tuple, map(dict.items, csv.DictReader(open(course / "grades.csv"))))),
        "feedback": {str(p.relative_to(course)): p.read_bytes() for p in sorted((course / "feedback").rglob("*.html"))},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=300, help="synthetic students (300 take about 37 min serially, 18 min on 2 workers)")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the parallel run")
    p.add_argument("--assignment", default="00_bag_of_words", help="the assignment to grade")
    p.add_argument("--seed", type=int, default=0, help="seed of the mix of submissions")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    args = p.parse_args()
    if args.workers < 1:
        p.error("--workers must be at least 1")
    aid = args.assignment
    with tempfile.TemporaryDirectory() as tmp:
        serial = new_course(Path(tmp) / "serial")
        run("nbgrader", "generate_assignment", aid, cwd=serial)
        try:
            kinds = make(serial, aid, args.n, args.seed)
        except ValueError as err:
            p.error(str(err))
        par = Path(tmp) / "parallel"
        shutil.copytree(serial, par)
        print(f"{args.n} submissions of {aid}: " + ", ".join(f"{k} {v}" for k, v in kinds.items()), flush=True)
        runs = {
            "serial": timed([f"{BIN}/nbgrader", "autograde", aid], serial),
            f"{args.workers} workers": timed(
                [sys.executable, "-m", "lmkit.grader.parallel", aid, "--workers", str(args.workers), "--quiet"], par
            ),
        }
        a, b = outputs(serial, aid), outputs(par, aid)
    print(f"{'run':<12}{'seconds':>10}{'students/min':>15}{'peak MiB':>10}{'exit':>6}{'max load':>10}")
    for name, (seconds, peak, code, load) in runs.items():
        print(f"{name:<12}{seconds:>10.1f}{60 * args.n / seconds:>15.1f}{peak:>10.0f}{code:>6}{load:>10.1f}")
    (ts, *_), (tp, *_) = runs.values()
    equal = {k: a[k] == b[k] for k in a}
    print(f"speed-up: {ts / tp:.2f}x (target >= 1.7x)")
    print("parallel equals serial: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in equal.items()))
    if args.json:
        result = {
            "n": args.n,
            "assignment": aid,
            "kinds": dict(kinds),
            "runs": {
                k: {"seconds": s, "students_per_min": 60 * args.n / s, "peak_mib": m, "exit": c, "max_load": ld}
                for k, (s, m, c, ld) in runs.items()
            },
            "speedup": ts / tp,
            "equal": equal,
        }
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
