"""The book builds from clean, without warnings, executing every chapter, and the
result works offline: plotly and MathJax are served locally, nothing leaks."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

import pytest
import yaml

from course import ASSIGNMENTS, REPO, run
from test_release import LEAKS

pytestmark = pytest.mark.slow
HTML = REPO / "_build" / "html"


def toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            files.append(chapter["file"])
            files += [s["file"] for s in chapter.get("sections", [])]
    return files


@pytest.fixture(scope="module")
def build_log() -> str:
    # --all re-renders every page so that warnings are reported again; executed
    # notebooks come from the execution cache when their code has not changed.
    proc = run("jupyter-book", "build", "--all", "-W", "-n", "--keep-going", ".", cwd=REPO, check=False, timeout=1800)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"book build failed:\n{log[-6000:]}"
    return log


def test_build_has_no_warnings(build_log):
    warnings = [line for line in build_log.splitlines() if "WARNING" in line and "Kernel is running over TCP" not in line]
    assert not warnings, "\n".join(warnings)


def chapters() -> list[str]:
    return [f for f in toc_files() if re.fullmatch(r"book/\d\d_\w+", f)]


def test_every_page_is_built_and_chapters_have_figures(build_log):
    for name in toc_files():
        assert (HTML / f"{name}.html").exists(), name
    assert len(chapters()) >= 3
    for chapter in chapters():
        page = (HTML / f"{chapter}.html").read_text()
        assert page.count('class="plotly-graph-div"') >= 3, f"{chapter} lost its plotly figures"
        assert "output traceback" not in page and "output stderr" not in page, f"{chapter} shows an error or a warning"


def test_pages_load_nothing_from_the_network(build_log):
    assert (HTML / "_static" / "plotly.min.js").exists()
    assert (HTML / "_static" / "mathjax" / "tex-chtml.js").exists()
    for page in HTML.rglob("*.html"):
        text = page.read_text()
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not remote, f"{page.relative_to(HTML)} loads {remote}"


def test_book_leaks_no_solutions(build_log):
    for path in HTML.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".ipynb", ".md", ".txt", ".js"} and "_static" not in path.parts:
            text = path.read_text(errors="replace")
            for leak in LEAKS:
                assert leak not in text, f"{path.relative_to(HTML)} contains {leak!r}"


def test_exercise_pages_offer_the_released_notebooks(build_log):
    for name, notebook in ASSIGNMENTS.items():
        page = (HTML / "book" / "exercises" / f"{name}.html").read_text()
        link = re.search(rf'href="([^"]*{notebook})"', page)
        assert link, f"no download link to {notebook}"
        target = (HTML / "book" / "exercises" / link.group(1)).resolve()
        assert target.read_bytes() == (REPO / "exercises" / name / notebook).read_bytes()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_figures_render_in_a_browser_without_console_errors(build_log):
    for chapter in chapters():
        with tempfile.TemporaryDirectory() as profile:
            proc = subprocess.run(
                [
                    "chromium",
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                    "--disable-sync",
                    f"--user-data-dir={profile}",
                    "--enable-logging=stderr",
                    "--v=0",
                    "--virtual-time-budget=10000",
                    "--dump-dom",
                    (HTML / f"{chapter}.html").as_uri(),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
        dom, console = proc.stdout, proc.stderr
        figures = dom.count('class="plotly-graph-div')
        assert figures >= 3 and dom.count("plot-container plotly") == figures, f"{chapter}: plotly did not draw every figure"
        assert "<mjx-container" in dom, f"{chapter}: MathJax did not typeset the math"
        errors = [line for line in console.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]
        assert not errors, f"{chapter}: console errors\n" + "\n".join(errors)


def test_chapters_download_as_notebooks(build_log):
    import nbformat

    for chapter in chapters():
        page = (HTML / f"{chapter}.html").read_text()
        link = re.search(r'href="([^"]*_sources/[^"]*\.ipynb)"', page)
        assert link, f"{chapter} has no .ipynb download"
        nb = nbformat.read(HTML / "book" / link.group(1), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert len(code) == (REPO / f"{chapter}.md").read_text().count("```{code-cell}"), f"{chapter}: code cells missing"
        assert nb.metadata.kernelspec.name == "python3"
