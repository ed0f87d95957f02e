"""The student bundle: everything a student needs, and no solution or hidden test."""

from __future__ import annotations

import html
import re
import zipfile

import nbformat
import pytest

from course import ASSIGNMENTS, REPO, run

pytestmark = pytest.mark.slow
REGIONS = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.DOTALL)


def secrets() -> list[tuple[str, str, list[str]]]:
    """(where, kind, lines) for every solution, hidden test and rubric of solutions/."""
    out = []
    for aid, name in ASSIGNMENTS.items():
        for cell in nbformat.read(REPO / "solutions" / aid / name, as_version=4).cells:
            where = f"{aid}/{cell.metadata.get('nbgrader', {}).get('grade_id')}"
            if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
                out.append((where, "rubric", [line.strip() for line in cell.source.splitlines() if line.strip()]))
            for kind, body in REGIONS.findall(cell.source):
                out.append((where, kind.lower(), [line.strip() for line in body.splitlines() if line.strip()]))
    return out


def runs(lines: list[str], n: int) -> set[tuple[str, ...]]:
    """Runs of n consecutive lines with enough text to be distinctive (not `else:` / `pass`)."""
    return {tuple(lines[i : i + n]) for i in range(len(lines) - n + 1) if sum(map(len, lines[i : i + n])) >= 60}


def bundle_lines(root) -> dict[str, list[str]]:
    """Every text file of the bundle as stripped lines (HTML without its tags)."""
    texts = {}
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if path.suffix == ".html":
            text = html.unescape(re.sub(r"<[^>]+>", "", text))
        if path.suffix == ".ipynb":  # the cells' text, not their JSON encoding
            nb = nbformat.reads(text, as_version=4)
            text = "\n".join(c.source for c in nb.cells)
        texts[str(path.relative_to(root))] = [line.strip() for line in text.splitlines() if line.strip()]
    return texts


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    if not (REPO / "_build" / "html" / "index.html").exists():
        run("jupyter-book", "build", ".", cwd=REPO, timeout=1800)
    out = tmp_path_factory.mktemp("bundle") / "student"
    run("python", "-m", "lmkit.bundle", "--out", str(out), cwd=REPO)
    return out


def test_bundle_has_what_students_need(bundle):
    for aid, name in ASSIGNMENTS.items():
        assert (bundle / "exercises" / aid / name).read_bytes() == (REPO / "exercises" / aid / name).read_bytes()
    assert (bundle / "book" / "index.html").exists() and (bundle / "lmkit" / "datasets" / "tinyshakespeare.txt").exists()
    assert (bundle / "pyproject.toml").exists() and "jupyter lab" in (bundle / "README.md").read_text()
    assert not (bundle / "solutions").exists() and not (bundle / "tests").exists()
    with zipfile.ZipFile(bundle.with_suffix(".zip")) as z:
        assert {f"student/exercises/{aid}/{name}" for aid, name in ASSIGNMENTS.items()} <= set(z.namelist())


def test_bundle_holds_no_solution_and_no_hidden_test(bundle):
    """No run of (up to) three lines of any hidden test or rubric appears in any file of the
    bundle, and none of any solution outside lmkit. lmkit is the public reference: a solution
    may coincide with its code (calling it earns nothing; copying it is a matter for the
    course's honesty policy)."""
    files = {path: runs(lines, 1) | runs(lines, 2) | runs(lines, 3) for path, lines in bundle_lines(bundle).items()}
    leaks = []
    for where, kind, lines in secrets():
        for run_ in runs(lines, min(3, len(lines))):
            leaks += [
                f"{where} ({kind}) appears in {path}: {run_}"
                for path, found in files.items()
                if run_ in found and not (kind == "solution" and path.startswith("lmkit/"))
            ]
    assert not leaks, "\n".join(leaks[:20])
