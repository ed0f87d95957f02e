"""exercises/ is exactly nbgrader's release of solutions/, and leaks nothing."""

from __future__ import annotations

import json

import pytest

from course import ASSIGNMENTS, REPO, assignments, run

pytestmark = pytest.mark.slow
LEAKS = [
    "BEGIN SOLUTION",
    "END SOLUTION",
    "BEGIN HIDDEN TESTS",
    "Rubric (instructors only",
    "import lmkit.baselines as _ref",
    "_BPE().train",
]


@pytest.mark.parametrize("aid", list(ASSIGNMENTS))
def test_exercises_equal_a_fresh_release(aid, tmp_path):
    # An absolute release directory overrides the course root; --no-db leaves no gradebook behind.
    run("nbgrader", "generate_assignment", aid, "--no-db", "--force", f"--CourseDirectory.release_directory={tmp_path}", cwd=REPO)
    fresh = (tmp_path / aid / ASSIGNMENTS[aid]).read_bytes()
    committed = (REPO / "exercises" / aid / ASSIGNMENTS[aid]).read_bytes()
    assert fresh == committed, f"exercises/{aid} is stale: run `nbgrader generate_assignment {aid} --force` and commit"


@pytest.mark.parametrize("aid", list(ASSIGNMENTS))
def test_release_leaks_no_solution(aid):
    text = (REPO / "exercises" / aid / ASSIGNMENTS[aid]).read_text()
    for leak in LEAKS:
        assert leak not in text, f"exercises/{aid} contains {leak!r}"
    nb = json.loads(text)
    stubs = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("solution") and c["cell_type"] == "code"]
    assert stubs and all("raise NotImplementedError()" in "".join(c["source"]) for c in stubs)


def test_assignments_are_the_folders_of_solutions(tmp_path):
    assert list(ASSIGNMENTS) == sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
    (tmp_path / "00_a").mkdir()
    (tmp_path / "00_a" / "a.ipynb").write_text("{}")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    assert assignments(tmp_path) == {"00_a": "a.ipynb"}
    (tmp_path / "01_b").mkdir()
    with pytest.raises(ValueError, match="01_b must hold exactly one notebook .*found none"):
        assignments(tmp_path)
    (tmp_path / "01_b" / "b.ipynb").write_text("{}")
    (tmp_path / "01_b" / "c.ipynb").write_text("{}")
    with pytest.raises(ValueError, match=r"01_b must hold exactly one notebook .*\['b.ipynb', 'c.ipynb'\]"):
        assignments(tmp_path)
