"""Autograde a whole class in parallel: ``python -m lmkit.grader.parallel AID`` (README, "For instructors").

nbgrader grades one submission after another and shows no progress. This command,
run from the course directory, grades every submitted student of an assignment
side by side on a Dask cluster: a ``LocalCluster`` of ``--workers`` processes on
this machine, or the cluster whose scheduler ``--scheduler`` names. Each task
runs ``nbgrader autograde AID --student=S --force`` for one student, so each
submission is graded exactly as a serial ``nbgrader autograde`` grades it (the
course's ``nbgrader_config.py``, its sandbox, its gradebook): same scores, same
autograded notebooks, feedback and export. A progress bar shows the ETA, a line
per student its time, and a closing summary the failures with their reason and
the slowest students.

An interrupted run resumes: a student whose autograded notebooks and gradebook
submission both exist is skipped unless ``--force``; ``--student S`` regrades one.
Concurrent gradings on one machine keep apart: each sandbox runs as a user of its
own (:func:`lmkit.grader.sandbox.claim_uid`).
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from tqdm import tqdm
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

# nbgrader's log lines begin "[AutogradeApp | ERROR] ..."; a record runs until the next such line.
_RECORD = re.compile(r"^\[\w+ \| (\w+)\] ?", re.MULTILINE)
LOCKED = "database is locked"  # SQLite's answer when another grading held the gradebook too long
RETRIES = 2  # a grading that met a locked gradebook is run again, this many times at most


@dataclass
class Result:
    """One student's grading: how long it took and, when it failed, why."""

    student: str
    seconds: float
    ok: bool
    reason: str = ""
    host: str = ""


@dataclass
class Summary:
    """What a run did, student by student."""

    results: list[Result] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    def report(self, slowest: int = 5) -> str:
        graded = [r for r in self.results if r.ok]
        rate = 60 * len(self.results) / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"graded {len(graded)}, failed {len(self.failed)}, skipped {len(self.skipped)} (already graded; --force regrades)"
            f" in {self.seconds:.0f} s: {rate:.1f} students/min"
        ]
        if self.interrupted:
            lines.append("interrupted: run the same command again to grade the rest")
        for r in sorted(self.failed, key=lambda r: r.student):
            lines.append(f"  FAILED {r.student}: {r.reason}")
        if graded:
            top = sorted(graded, key=lambda r: -r.seconds)[:slowest]
            lines.append("slowest: " + ", ".join(f"{r.student} {r.seconds:.1f} s" for r in top))
        return "\n".join(lines)


def failure_reason(log: str) -> str:
    """The line of nbgrader's log that says why a grading failed: the exception of the first
    error traceback, else the first error message."""
    starts = list(_RECORD.finditer(log))
    errors = [
        log[m.end() : (starts[i + 1].start() if i + 1 < len(starts) else len(log))].strip()
        for i, m in enumerate(starts)
        if m.group(1) in ("ERROR", "CRITICAL")
    ]
    for text in errors:
        if text.startswith("Traceback (most recent call last)"):
            return text.splitlines()[-1].strip()[:300]
    if errors:
        return errors[0].splitlines()[0][:300]
    tail = [line for line in log.splitlines() if line.strip()]
    return tail[-1][:300] if tail else "nbgrader failed and printed nothing"


_libc = ctypes.CDLL(None, use_errno=True)  # looked up before any fork: a forked child should not load libraries


def _die_with_parent() -> None:
    """In a child: die when the process (strictly, the thread) that started it dies: a cluster shut down mid-grading."""
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _autograde_child(request: dict) -> None:
    """A fresh fork of the warm server: ``nbgrader ARGV`` in the course directory, its log in a file."""
    code = 1
    try:
        _die_with_parent()
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the server's requests are not for it
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(request["root"])
        from nbgrader.apps.nbgraderapp import NbGraderApp

        NbGraderApp.launch_instance(argv=request["argv"])
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    except BaseException:  # noqa: BLE001 - whatever nbgrader raised is this student's failure, reported in the log
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """A warm nbgrader: import nbgrader once, then fork a fresh copy of this process per request.

    A new ``nbgrader`` process spends about 3 s importing before it grades; a fork starts
    graded at once, and each student still gets a process of its own. Requests are JSON
    lines on stdin ({"root", "argv", "log"}); for each, it answers {"pid"} then {"status"}.
    Single-threaded, so forking it is safe.
    """
    from nbgrader.apps.nbgraderapp import NbGraderApp  # noqa: F401

    import lmkit.grader.execute  # noqa: F401 - what the course's nbgrader_config.py imports

    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            _autograde_child(json.loads(line))
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)


_idle: list[subprocess.Popen] = []  # this worker process's warm servers not in use
_idle_lock = threading.Lock()


def _run_warm(env: dict[str, str], request: dict, timeout: float | None) -> tuple[int, bool]:
    """Run one request on an idle warm server (started if none): (exit status, whether it timed out)."""
    with _idle_lock:
        server = _idle.pop() if _idle else None
    if server is None or server.poll() is not None:
        server = subprocess.Popen(
            [sys.executable, "-c", "from lmkit.grader.parallel import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            preexec_fn=_die_with_parent,
        )
    server.stdin.write(json.dumps(request) + "\n")
    server.stdin.flush()
    answer = server.stdout.readline()
    if not answer:
        server.kill()
        raise RuntimeError("the warm nbgrader process died")
    pid, timed_out = json.loads(answer)["pid"], threading.Event()

    def stop() -> None:  # nbgrader, its kernels (in sessions of their own) and their sandboxes
        timed_out.set()
        try:
            family = psutil.Process(pid).children(recursive=True)
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            return
        for p in family:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass

    timer = threading.Timer(timeout, stop) if timeout else None
    if timer:
        timer.start()
    answer = server.stdout.readline()
    if timer:
        timer.cancel()
    if not answer:
        server.kill()
        raise RuntimeError("the warm nbgrader process died")
    with _idle_lock:
        _idle.append(server)
    return json.loads(answer)["status"], timed_out.is_set()


def grade_student(root: str, aid: str, student: str, nbgrader_args: Sequence[str] = (), timeout: float | None = None) -> Result:
    """``nbgrader autograde AID --student=STUDENT --force`` in the course directory ``root``, in a process of its own.

    Runs on a Dask worker, which must see the course directory at the same path and have
    this environment (nbgrader, lmkit) installed.
    """
    host = socket.gethostname()
    if not Path(root, "nbgrader_config.py").is_file():
        return Result(student, 0.0, False, f"{root}/nbgrader_config.py not found on {host}: workers need the course at the same path", host)
    bin_dir = str(Path(sys.executable).parent)  # nbgrader calls `alembic` and starts kernels by name
    # One thread per grading: the parallelism is across students (two threads each on busy cores ran 5-10x slower).
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    argv = ["autograde", aid, f"--student={student}", "--force", *nbgrader_args]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lmkit-autograde-") as tmp:
        request = {"root": root, "argv": argv, "log": os.path.join(tmp, "log")}
        for _ in range(1 + RETRIES):
            try:
                status, timed_out = _run_warm(env, request, timeout)
            except RuntimeError as err:
                return Result(student, time.perf_counter() - start, False, str(err), host)
            if timed_out:
                return Result(student, time.perf_counter() - start, False, f"stopped after {timeout:g} s (--timeout)", host)
            if status == 0:
                return Result(student, time.perf_counter() - start, True, "", host)
            log = Path(request["log"]).read_text(errors="replace")
            if LOCKED not in log:
                break
    return Result(student, time.perf_counter() - start, False, failure_reason(log), host)


def course_directory(root: Path) -> CourseDirectory:
    """nbgrader's view of the course in ``root``: its folders and gradebook, as its nbgrader_config.py sets them."""
    config = Config()
    if (root / "nbgrader_config.py").is_file():
        config = PyFileConfigLoader("nbgrader_config.py", str(root)).load_config()
    if "root" not in config.get("CourseDirectory", {}):
        config.CourseDirectory.root = str(root)
    return CourseDirectory(config=config)


def plan(root: Path, aid: str, students: Sequence[str] = (), force: bool = False) -> tuple[list[str], list[str]]:
    """(to grade, skipped): every student with a folder for ``aid`` in submitted/ (or ``students``),
    less those already graded (autograded notebooks and a gradebook submission), unless ``force``."""
    cd = course_directory(root)
    pattern = re.compile(cd.format_path(cd.submitted_directory, "(?P<student>[^/]+)", aid, escape=True) + "$")
    matches = (pattern.match(path) for path in glob.glob(cd.format_path(cd.submitted_directory, "*", aid)))
    found = sorted(m.group("student") for m in matches if m and os.path.isdir(m.group(0)))
    if students:
        unknown = sorted(set(students) - set(found))
        if unknown:
            raise ValueError(f"no submission of {aid} for {', '.join(unknown)} in {cd.format_path(cd.submitted_directory, '*', aid)}")
        found = sorted(set(students))
    with Gradebook(cd.db_url, cd.course_id) as gb:
        try:
            notebooks = [nb.name + ".ipynb" for nb in gb.find_assignment(aid).notebooks]
        except MissingEntry:
            raise ValueError(f"{aid} is not in the gradebook: run `nbgrader generate_assignment {aid}` first") from None
        if force or students:
            return found, []
        done = set()
        for student in found:
            folder = Path(cd.format_path(cd.autograded_directory, student, aid))
            try:
                gb.find_submission(aid, student)
            except MissingEntry:
                continue
            if all((folder / name).is_file() for name in notebooks):
                done.add(student)
    return [s for s in found if s not in done], [s for s in found if s in done]


def grade(
    aid: str,
    *,
    root: Path | str = ".",
    workers: int = 2,
    scheduler: str | None = None,
    students: Sequence[str] = (),
    force: bool = False,
    timeout: float | None = None,
    nbgrader_args: Sequence[str] = (),
    progress: bool = True,
) -> Summary:
    """Grade ``aid`` for every student not yet graded (see :func:`plan`), in parallel."""
    # Imported here: the warm servers import this module and must stay free of distributed's threads to fork safely.
    from distributed import Client, LocalCluster, as_completed

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    root = Path(root).resolve()
    todo, skipped = plan(root, aid, students, force)
    summary = Summary(skipped=skipped)
    if not todo:
        return summary
    start = time.perf_counter()
    cluster = None
    if scheduler is None:
        # Processes, one thread each: a grading is a chain of subprocesses, and one per core keeps them apart.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(scheduler or cluster)
    try:
        client.wait_for_workers(1, timeout=120)
    except TimeoutError:
        client.close()
        raise ValueError(f"no Dask worker joined the scheduler {scheduler} within 120 s") from None
    bar = tqdm(total=len(todo), unit="student", desc=f"grading {aid}", disable=not progress, dynamic_ncols=True)
    futures = {
        client.submit(grade_student, str(root), aid, s, list(nbgrader_args), timeout, key=f"autograde-{aid}-{s}-{uuid.uuid4().hex[:8]}"): s
        for s in todo
    }
    try:
        for future in as_completed(futures):
            try:
                r = future.result()
            except Exception as exc:  # the worker itself died (e.g. killed for memory): that student failed
                r = Result(futures[future], 0.0, False, f"the Dask worker failed: {type(exc).__name__}: {exc}"[:300])
            summary.results.append(r)
            bar.update()
            bar.set_postfix(failed=len(summary.failed))
            if progress:
                bar.write(f"{r.student:<24} {r.seconds:6.1f} s  {'graded' if r.ok else 'FAILED: ' + r.reason}")
    except KeyboardInterrupt:
        summary.interrupted = True
        client.cancel(list(futures))
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
        summary.seconds = time.perf_counter() - start
    return summary


def gradebook_rows(root: Path | str, aid: str) -> dict[str, dict[str, tuple]]:
    """Each student's grades and comments of ``aid`` as plain values, to compare two gradebooks."""
    cd = course_directory(Path(root).resolve())
    rows: dict[str, dict[str, tuple]] = {}
    with Gradebook(cd.db_url, cd.course_id) as gb:
        for sub in gb.find_assignment(aid).submissions:
            row = rows.setdefault(sub.student_id, {"timestamp": (str(sub.timestamp),)})
            for nb in sub.notebooks:
                for g in nb.grades:
                    row[f"{nb.name}/{g.name}"] = (g.auto_score, g.manual_score, g.extra_credit, g.max_score, g.needs_manual_grade)
                for c in nb.comments:
                    row[f"{nb.name}/{c.name}/comment"] = (c.auto_comment, c.manual_comment)
    return rows


def autograded_notebooks(root: Path | str, aid: str) -> dict[str, dict]:
    """Every autograded notebook of ``aid`` by path, as far as two gradings can agree: without execution
    timestamps, and with consecutive pieces of one output stream joined (the kernel cuts a stream where
    its flushes happen to fall)."""
    cd = course_directory(Path(root).resolve())
    out = {}
    for path in sorted(glob.glob(os.path.join(cd.format_path(cd.autograded_directory, "*", aid), "*.ipynb"))):
        nb = json.loads(Path(path).read_text())
        for cell in nb["cells"]:
            cell.get("metadata", {}).pop("execution", None)
            joined: list[dict] = []
            for o in cell.get("outputs", []):
                if o["output_type"] == "stream":
                    o = {**o, "text": "".join(o["text"])}
                    if joined and joined[-1]["output_type"] == "stream" and joined[-1]["name"] == o["name"]:
                        joined[-1]["text"] += o["text"]
                        continue
                joined.append(o)
            if "outputs" in cell:
                cell["outputs"] = joined
        out[os.path.relpath(path, cd.root)] = nb
    return out


def parser() -> argparse.ArgumentParser:
    """The flags of ``python -m lmkit.grader.parallel``."""
    p = argparse.ArgumentParser(
        prog="python -m lmkit.grader.parallel",
        description="Autograde every submission of an assignment in parallel (run from the course directory).",
        epilog="Arguments after -- go to each `nbgrader autograde`, e.g. -- --SandboxedExecute.call_timeout=10",
    )
    p.add_argument("assignment", help="the assignment to grade, e.g. 00_bag_of_words")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="worker processes on this machine (default: one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="grade on this Dask cluster (e.g. tcp://10.0.0.5:8786) instead")
    p.add_argument("--student", action="append", default=[], help="(re)grade only this student; repeat for several")
    p.add_argument("--force", action="store_true", help="regrade students who are already graded")
    p.add_argument("--timeout", type=float, default=None, help="seconds one student's grading may take before it is stopped and failed")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-student lines, only the summary")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)  # split here: argparse would not give a list after the positional
    args = p.parse_args(argv[:cut])
    args.nbgrader_args = argv[cut + 1 :]
    if args.workers is None:  # not an argparse default: argparse cannot tell `--workers 2` from a default of 2
        args.workers = len(os.sched_getaffinity(0))
    if args.workers < 1:
        p.error(f"--workers must be at least 1, got {args.workers}")
    if args.timeout is not None and args.timeout <= 0:
        p.error(f"--timeout must be positive, got {args.timeout}")
    try:
        summary = grade(
            args.assignment,
            workers=args.workers,
            scheduler=args.scheduler,
            students=args.student,
            force=args.force,
            timeout=args.timeout,
            nbgrader_args=args.nbgrader_args,
            progress=not args.quiet,
        )
    except ValueError as err:
        p.error(str(err))
    print(summary.report())
    return 130 if summary.interrupted else (1 if summary.failed else 0)


if __name__ == "__main__":
    # Run the imported module, not __main__: Dask pickles functions of __main__ by value, module state included.
    from lmkit.grader.parallel import main as _main

    sys.exit(_main())
