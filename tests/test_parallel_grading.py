"""Parallel autograding (``python -m lmkit.grader.parallel``) against serial ``nbgrader autograde``.

The same submissions of the smallest assignment are graded twice from the same
gradebook: serially by nbgrader, and in parallel on a real Dask cluster started
as an instructor starts one (``dask scheduler`` and ``dask worker`` processes). Both gradebooks, autograded notebooks and CSV exports
must be equal. Then: a second run resumes (skips what is graded), ``--student``
regrades one, and a fork bomb in one sandbox leaves a sandbox beside it the
processes it needs.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed import Client

import submissions as S
from course import ASSIGNMENTS, BIN, ENV, new_course, replace_in_cell, run, solved, stop, submit
from lmkit.grader import parallel
from lmkit.grader import sandbox as sbx

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="grading runs in bubblewrap: apt-get install bubblewrap"),
]
AID = "00_bag_of_words"
TIMEOUTS = ["--SandboxedExecute.call_timeout=5"]  # for each `nbgrader autograde`, passed on after `--`


def grade_in_parallel(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lmkit.grader.parallel", AID, "--quiet", *args, "--", *TIMEOUTS],
        cwd=course,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


@contextlib.contextmanager
def dask_cluster(folder: Path, workers: int = 2):
    """A scheduler and ``workers`` single-thread worker processes on loopback, from Dask's own commands; yields its address."""
    info = folder / "scheduler.json"
    common = ["--no-dashboard", "--scheduler-file", str(info)]
    quiet = dict(env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [subprocess.Popen([f"{BIN}/dask", "scheduler", "--host", "127.0.0.1", "--port", "0", *common], **quiet)]
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        worker = ["worker", "--nworkers", str(workers), "--nthreads", "1", "--local-directory", str(folder), *common]
        procs.append(subprocess.Popen([f"{BIN}/dask", *worker], **quiet))
        address = json.loads(info.read_text())["address"]
        with Client(address) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            stop(p)


def mtimes(course: Path) -> dict[str, int]:
    return {str(p.relative_to(course)): p.stat().st_mtime_ns for p in (course / "autograded").rglob("*.ipynb")}


def export(course: Path) -> list[dict]:
    run("nbgrader", "export", "--to", str(course / "grades.csv"), cwd=course)
    return sorted(csv.DictReader(open(course / "grades.csv")), key=lambda r: r["student_id"])


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One course graded serially and a copy of it graded on a two-worker cluster."""
    root = tmp_path_factory.mktemp("parallel")
    serial = new_course(root / "serial")
    run("nbgrader", "generate_assignment", AID, cwd=serial)
    subs = {
        "solution": solved(AID),
        "blank": S.blank(AID),
        "mistakes_a": S.mutant(AID, "mistakes_a")[0],
        "syntax_error": replace_in_cell(solved(AID), "tokenize", "def tokenize(text):", "def tokenize(text)"),
        "malformed": '{"cells": [',
    }
    for student, nb in subs.items():
        submit(serial, student, AID, nb)
    course = root / "parallel"
    shutil.copytree(serial, course)  # the same gradebook (assignment, cell ids) before grading
    # The two gradings run side by side (separate courses): this test compares results, not speed.
    serial_proc = subprocess.Popen(
        [f"{BIN}/nbgrader", "autograde", AID, *TIMEOUTS], cwd=serial, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    with dask_cluster(root) as address:
        proc = grade_in_parallel(course, "--scheduler", address)
    serial_proc.wait(timeout=600)
    return dict(serial=serial, course=course, subs=subs, proc=proc)


def test_parallel_grading_lands_in_the_gradebook_as_serial_grading_does(graded):
    serial, course, proc = graded["serial"], graded["course"], graded["proc"]
    rows = parallel.gradebook_rows(course, AID)
    assert rows == parallel.gradebook_rows(serial, AID), proc.stdout + proc.stderr
    assert set(rows) == set(graded["subs"])  # the malformed one too: nbgrader records it, scoring nothing
    solution = [v for k, v in rows["solution"].items() if k.count("/") == 1]
    assert sum(g[3] for g in solution) > 0 and all(g[0] == g[3] for g in solution if g[0] is not None)
    assert parallel.autograded_notebooks(course, AID) == parallel.autograded_notebooks(serial, AID)
    assert export(course) == export(serial)


def test_the_summary_names_each_failure_and_the_slowest(graded):
    proc = graded["proc"]
    assert proc.returncode == 1, proc.stderr[-3000:]  # like nbgrader: a failed submission fails the run
    assert "graded 4, failed 1, skipped 0" in proc.stdout, proc.stdout
    assert "FAILED malformed: " in proc.stdout and "Notebook does not appear to be JSON" in proc.stdout, proc.stdout
    slowest = proc.stdout.split("slowest: ")[1].splitlines()[0].split(", ")
    assert len(slowest) == 4 and {s.split()[0] for s in slowest} == {"solution", "blank", "mistakes_a", "syntax_error"}, slowest
    seconds = [float(s.split()[1]) for s in slowest]
    assert seconds == sorted(seconds, reverse=True) and seconds[-1] > 0, slowest


def test_a_second_run_resumes_and_student_regrades_one(graded):
    course = graded["course"]
    before, rows = mtimes(course), parallel.gradebook_rows(course, AID)
    proc = grade_in_parallel(course, "--workers", "2")
    # Only the failed one is tried again; nothing graded is touched.
    assert "graded 0, failed 1, skipped 4" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert mtimes(course) == before
    proc = grade_in_parallel(course, "--workers", "1", "--student", "mistakes_a")
    assert proc.returncode == 0 and "graded 1, failed 0, skipped 0" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    after = mtimes(course)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {f"autograded/mistakes_a/{AID}/{ASSIGNMENTS[AID]}"}
    assert parallel.gradebook_rows(course, AID) == rows  # the same scores again
    assert not sbx.sandbox_processes(), "processes of a sandbox user outlived grading"


def test_bad_arguments_are_refused_with_the_reason(graded, monkeypatch, capsys):
    monkeypatch.chdir(graded["course"])
    for args, message in [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not allowed with argument"),
        (["--timeout", "-1"], "--timeout must be positive"),
        (["--student", "nobody_here"], "no submission of 00_bag_of_words for nobody_here"),
    ]:
        with pytest.raises(SystemExit) as exit:
            parallel.main([AID, *args])
        assert exit.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(ValueError, match="run `nbgrader generate_assignment 01_tokens_and_embeddings` first"):
        parallel.plan(graded["course"], "01_tokens_and_embeddings")


FORK_ALL = """
import os, time
n = 0
while True:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    n += 1
print(os.getuid(), n, flush=True)
time.sleep(120)
"""
FORK_8 = """
import os
pids = []
for _ in range(8):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
print(os.getuid(), "forked 8", flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox users exist only when grading as root")
def test_a_fork_bomb_in_one_sandbox_leaves_another_its_processes():
    env, limits = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}, sbx.Limits()
    bomb = sbx.popen([sys.executable, "-c", FORK_ALL], limits=limits, sandbox=True, pass_fds=[], env=env, cwd="/")
    try:
        uid, held = map(int, bomb.stdout.readline().split())
        assert held >= limits.processes - 2  # it holds its user's whole allowance
        # a sandbox started beside it runs as another user, with processes to spare
        probe = sbx.popen([sys.executable, "-c", FORK_8], limits=limits, sandbox=True, pass_fds=[], env=env, cwd="/")
        out = probe.communicate(timeout=60)[0].decode()
        assert out.split()[1:] == ["forked", "8"] and int(out.split()[0]) != uid, out
        # the control: the same user as the bomb could not even start
        same = subprocess.run(
            sbx.command([sys.executable, "-c", FORK_8], limits, uid=uid), env=env, capture_output=True, preexec_fn=limits.apply
        )
        assert same.returncode != 0 and b"forked" not in same.stdout, same
    finally:
        os.killpg(bomb.pid, 9)
        bomb.wait()
    deadline = time.monotonic() + 10  # the sandbox's processes die with it
    while sbx.sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not sbx.sandbox_processes()


def test_failure_reason_picks_the_line_that_explains():
    log = (
        "[AutogradeApp | INFO] Autograding x.ipynb\n"
        "[AutogradeApp | ERROR] There was an error processing assignment: /c/submitted/s/a\n"
        "[AutogradeApp | ERROR] Traceback (most recent call last):\n  File ...\n"
        "nbformat.reader.NotJSONError: Notebook does not appear to be JSON: '{\"cells\": ['\n"
        "[AutogradeApp | ERROR] There was an error processing assignment 'a' for student 's'\n"
    )
    assert parallel.failure_reason(log) == "nbformat.reader.NotJSONError: Notebook does not appear to be JSON: '{\"cells\": ['"
    assert parallel.failure_reason("[AutogradeApp | WARNING] w\n[AutogradeApp | ERROR] No notebooks were matched by 'x'\n") == (
        "No notebooks were matched by 'x'"
    )
    assert parallel.failure_reason("") == "nbgrader failed and printed nothing"
