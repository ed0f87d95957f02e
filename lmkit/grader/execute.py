"""nbgrader's execution step, split in two: the instructor's cells in the grading
kernel, the submission's cells in a sandboxed worker.

``nbgrader_config.py`` puts :class:`SandboxedExecute` in place of nbgrader's
``Execute`` in ``nbgrader autograde``, so the usual command grades this way and
the rest of nbgrader (gradebook, manual grading, feedback, export) is unchanged.

Which cells are the instructor's is decided from the gradebook, not from the
submitted file: a cell counts as a test (or setup) cell only when its grade_id
names a locked or test cell of the source notebook, and the grading kernel then
runs the gradebook's text of it, whatever the submission's copy says.
"""

from __future__ import annotations

import ast

from nbformat import NotebookNode
from nbgrader.api import Gradebook
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Float, Integer

from lmkit.grader import sandbox as sbx

PRELUDE = "__grader__ = __import__('lmkit.grader.session').grader.session.Session.start({tasks!r}, globals(), {options})"


def defined_names(source: str) -> list[str]:
    """Top-level functions and classes a solution cell defines: the names the tests call."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


class SandboxedExecute(Execute):
    """Execute a submission for grading without letting it touch the grading."""

    sandbox = Bool(
        True,
        help="Run each submission inside bubblewrap (see lmkit.grader.sandbox). "
        "False grades without isolation: only for submissions you trust.",
    ).tag(config=True)
    call_timeout = Float(25.0, help="Seconds one of the submission's cells or function calls may run (keep it below Execute.timeout).").tag(
        config=True
    )
    memory_limit_mib = Integer(6144, help="Address-space limit of a submission's process, in MiB.").tag(config=True)
    cpu_limit_s = Integer(600, help="CPU seconds a submission's process may use in all.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        if self.sandbox:
            sbx.require()
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            source_nb = gb.find_notebook(info["notebook"], info["assignment"])
            source = {c.name: c for c in source_nb.source_cells}
            tests = {c.name for c in source_nb.grade_cells} - {c.name for c in source_nb.solution_cells}
            tasks = sorted(
                {
                    name
                    for c in source_nb.solution_cells
                    if c.name in source and source[c.name].cell_type == "code"
                    for name in defined_names(source[c.name].source)
                }
            )
            trusted = {name: c.source for name, c in source.items() if c.cell_type == "code" and (c.locked or name in tests)}
        limits = sbx.Limits(cpu_seconds=self.cpu_limit_s, memory_bytes=self.memory_limit_mib * 2**20)
        options = (
            f"sandbox={self.sandbox!r}, call_timeout={self.call_timeout!r}, "
            f"limits=__import__('lmkit.grader.sandbox').grader.sandbox.Limits(**{vars(limits)!r})"
        )
        shown = []  # what each code cell should show after grading
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            label = grade_id or str(index + 1)
            if grade_id in trusted:
                text = trusted[grade_id]
                shown.append((cell, text))
                # tests run only here; setup cells run here and in the worker (the student's code needs them)
                cell.source = text if grade_id in tests else f"{text}\n__grader__.run_cell({text!r}, {label!r})"
            else:
                shown.append((cell, cell.source))
                cell.source = f"__grader__.run_cell({cell.source!r}, {label!r})"
        nb.cells.insert(
            0,
            NotebookNode(
                cell_type="code", source=PRELUDE.format(tasks=tasks, options=options), metadata={}, outputs=[], execution_count=None
            ),
        )
        try:
            nb, resources = super().preprocess(nb, resources)
        finally:
            if nb.cells and nb.cells[0].source.startswith("__grader__ ="):
                prelude = nb.cells.pop(0)
                _raise_if_failed(prelude)
            for cell, text in shown:
                cell.source = text
        return nb, resources


def _raise_if_failed(prelude: NotebookNode) -> None:
    """A grader that could not start grades nothing: say why instead of scoring zeros."""
    for out in prelude.get("outputs", []):
        if out.get("output_type") == "error":
            raise RuntimeError(f"the grader could not start: {out.get('ename')}: {out.get('evalue')}")


class WrapOutputs(NbGraderPreprocessor):
    """Feedback pages: wrap long output lines (grading messages) instead of scrolling sideways."""

    css = "div.output_area pre, div.output_subarea pre { white-space: pre-wrap; overflow-wrap: anywhere; }"

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        resources.setdefault("inlining", {}).setdefault("css", []).append(self.css)
        return nb, resources
