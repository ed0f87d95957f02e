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


def secrets() -> list[tuple[str, list[str]]]:
    """(where, lines) for every solution region and hidden-test region of solutions/."""
    out = []
    for aid, name in ASSIGNMENTS.items():
        for cell in nbformat.read(REPO / "solutions" / aid / name, as_version=4).cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
                out.append((f"{aid}/{gid} (rubric)", [line.strip() for line in cell.source.splitlines() if line.strip()]))
            for kind, body in REGIONS.findall(cell.source):
                out.append((f"{aid}/{gid} ({kind.lower()})", [line.strip() for line in body.splitlines() if line.strip()]))
    return out


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
        assert "student/exercises/03_attention/attention.ipynb" in z.namelist()


def test_bundle_holds_no_solution_and_no_hidden_test(bundle):
    """No three consecutive lines of any solution, hidden test or rubric appear in any file
    (lmkit is the public reference, so single lines may coincide with it; blocks may not)."""
    files = bundle_lines(bundle)
    windows = {}
    for path, lines in files.items():
        for i in range(len(lines) - 2):
            windows.setdefault(tuple(lines[i:i + 3]), path)
    leaks = []
    for where, lines in secrets():
        chunks = [tuple(lines[i:i + 3]) for i in range(len(lines) - 2)] or ([tuple(lines)] if lines else [])
        for chunk in chunks:
            if len(chunk) == 3 and chunk in windows:
                leaks.append(f"{where} appears in {windows[chunk]}: {chunk}")
            elif len(chunk) < 3 and any(" ".join(chunk) in " ".join(text) for text in files.values()) and len(" ".join(chunk)) > 40:
                leaks.append(f"{where} appears in the bundle: {chunk}")
    assert not leaks, "\n".join(leaks[:20])
