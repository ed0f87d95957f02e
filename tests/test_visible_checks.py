"""Before submission: the released notebook, run as a student runs it, in a plain
kernel. Each classic mistake must already fail its task's visible test, and the
solved notebook must pass every visible test."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

import submissions as S
from course import ASSIGNMENTS, REPO, grade_id, solved

pytestmark = pytest.mark.slow


def as_student(aid: str, submission: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The release with the submission's answers in it: visible tests only."""
    release = nbformat.read(REPO / "exercises" / aid / ASSIGNMENTS[aid], as_version=4)
    answers = {grade_id(c): c.source for c in submission.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in release.cells:
        if grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return release


def failing_tests(aid: str, nb: nbformat.NotebookNode) -> set[str]:
    NotebookClient(
        nb, timeout=300, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(REPO / "exercises" / aid)}}
    ).execute()
    return {
        grade_id(c)
        for c in nb.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade") and any(o.output_type == "error" for o in c.outputs)
    }


@pytest.mark.parametrize("aid", list(ASSIGNMENTS))
def test_solution_passes_and_each_mistake_fails_a_visible_test(aid):
    # One notebook per run: the solution, then every mutant's answers in turn.
    assert failing_tests(aid, as_student(aid, solved(aid))) == set()
    for name in S.MUTANTS[aid]:
        nb, expected = S.mutant(aid, name)
        missed = expected - failing_tests(aid, as_student(aid, nb))
        assert not missed, f"{name}: the visible tests of {sorted(missed)} pass despite the mistake"


def test_every_assignment_has_mistakes_and_alternatives():
    # A new folder in solutions/ is a new assignment: its classic mistakes and valid alternatives belong in submissions.py.
    for table in ("MUTANTS", "ALTERNATIVES"):
        keys = set(getattr(S, table))
        assert keys == set(ASSIGNMENTS), (
            f"tests/submissions.py {table}: no entry for {sorted(set(ASSIGNMENTS) - keys)}, "
            f"no assignment for {sorted(keys - set(ASSIGNMENTS))} (CONTRIBUTING.md, 'Adding a chapter')"
        )
