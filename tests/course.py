"""Shared helpers for the tests that run nbgrader and Jupyter Book for real."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]


def assignments(source: Path) -> dict[str, str]:
    """Each assignment folder of ``source`` (nbgrader's source directory) and the name of
    its one notebook, in folder order: adding a chapter's folder adds its assignment."""
    found = {}
    for folder in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        notebooks = sorted(p.name for p in folder.glob("*.ipynb"))
        if len(notebooks) != 1:
            raise ValueError(f"{folder} must hold exactly one notebook (the assignment), found {notebooks or 'none'}")
        found[folder.name] = notebooks[0]
    if not found:
        raise ValueError(f"no assignment folders in {source}")
    return found


ASSIGNMENTS = assignments(REPO / "solutions")
# nbgrader shells out to `alembic` and Jupyter starts kernels by name: both must
# come from this environment, whatever PATH the tests were started with.
BIN = str(Path(sys.executable).parent)
ENV = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.MULTILINE)


def run(*args: str, cwd: Path, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a command of this environment (e.g. "nbgrader", ...) and capture its output."""
    proc = subprocess.run([os.path.join(BIN, args[0]), *args[1:]], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Ask a server to stop (it shuts down what it started on the way out); kill it if it has not within ``timeout`` s."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def new_course(root: Path) -> Path:
    """A fresh course directory: this repo's config and solutions, an empty gradebook."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(REPO / "solutions", root / "solutions")
    return root


def grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def solved(aid: str, answers: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The released notebook as a student who solved everything would submit it:
    each solution cell holds the instructor's code (markers removed), each
    written answer some text, and ``answers`` overrides cells by grade_id."""
    release = nbformat.read(REPO / "exercises" / aid / ASSIGNMENTS[aid], as_version=4)
    source = {grade_id(c): c for c in nbformat.read(REPO / "solutions" / aid / ASSIGNMENTS[aid], as_version=4).cells}
    for cell in release.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            text = "A written answer." if cell.cell_type == "markdown" else SOLUTION_MARKERS.sub("", source[meta["grade_id"]].source)
            cell.source = (answers or {}).get(meta["grade_id"], text)
    return release


def replace_in_cell(nb: nbformat.NotebookNode, cell_id: str, old: str, new: str) -> nbformat.NotebookNode:
    """Edit one cell (by grade_id) of a submission; ``old`` must occur in it."""
    cell = next(c for c in nb.cells if grade_id(c) == cell_id)
    assert old in cell.source, f"{old!r} not in cell {cell_id}"
    cell.source = cell.source.replace(old, new)
    return nb


def submit(course: Path, student: str, aid: str, nb: nbformat.NotebookNode | str | None) -> None:
    """Place a submission: a notebook, raw text (e.g. malformed JSON), or None (folder without notebook)."""
    folder = course / "submitted" / student / aid
    folder.mkdir(parents=True, exist_ok=True)
    if nb is None:
        return
    path = folder / ASSIGNMENTS[aid]
    if isinstance(nb, str):
        path.write_text(nb)
    else:
        nbformat.write(nb, path)
