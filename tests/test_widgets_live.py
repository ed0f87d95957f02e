"""The live widgets as a student meets them: JupyterLab in a browser, the notebook run, each
widget used with the mouse and the keyboard, and what it shows read back from the page.

One JupyterLab server on loopback (a free port, a token, a temporary root, and temporary
Jupyter config, data and runtime folders, so nothing of the user's settings, kernels or
extensions' state leaks in), one headless Chromium driven over the DevTools protocol
(``tests/browser.py``), and one notebook with the chapters' widget cells. The unit tests in
``test_viz_widgets.py`` check what the widgets compute; these check that it reaches a student:
the JupyterLab widget manager renders them, browser events reach the kernel, the kernel's
answer comes back into the page, and nothing fails on the way (no console error, no uncaught
exception, no error output in the notebook, no error from a widget callback in the log).

Skipped without ``chromium``, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from browser import CHROMIUM, Page, wait_until
from course import stop
from lmkit.finetune import answer
from lmkit.viz import attention_maps

REPO = Path(__file__).resolve().parent.parent

# The cells a student runs, in order: each chapter's set-up, then the widget call exactly as
# the chapter's "Try it live" box writes it (test_cells_are_the_chapters checks that).
CH1_SETUP = """\
import lmkit.viz  # registers the plotly renderer used throughout the book
from lmkit.data import load_shakespeare, train_val_split
from lmkit.tokenizers import GPT2_SPLIT_PATTERN, BPETokenizer, CharTokenizer, WordTokenizer

text = load_shakespeare()
train_text, val_text = train_val_split(text, val_fraction=0.1)
char_tok = CharTokenizer().train(train_text)
word_tok = WordTokenizer().train(train_text, vocab_size=2000)
bpe_tok = BPETokenizer(GPT2_SPLIT_PATTERN).train(train_text, vocab_size=512)
tokenizers = {"characters": char_tok, "words (2000)": word_tok, "BPE (512)": bpe_tok}"""
CH3_SETUP = """\
from lmkit.data import char_data
from lmkit.pretrained import load_gpt

tokenizer, train_data, val_data = char_data()
gpt, gpt_ckpt = load_gpt("char_gpt_learned")"""
CH5_SETUP = """\
from lmkit.finetune import base_model, load_finetuned

base, tokenizer = base_model("char_gpt_rope")
model, ckpt = load_finetuned("gpt_instruct")"""
TOKENIZER_CALL = "from lmkit.widgets import tokenizer_explorer\n\ntokenizer_explorer(tokenizers)"
ATTENTION_CALL = "from lmkit.widgets import attention_explorer\n\nattention_explorer(gpt, tokenizer)"
ASK_CALL = "from lmkit.widgets import ask_widget\n\nask_widget(model, tokenizer)"
CHAPTER_CELLS = {
    "book/01_language_as_data.md": [CH1_SETUP, TOKENIZER_CALL],
    "book/03_transformers.md": [CH3_SETUP, ATTENTION_CALL],
    "book/05_finetuning.md": [CH5_SETUP, ASK_CALL],
}
CELLS = [CH1_SETUP, TOKENIZER_CALL, CH3_SETUP, ATTENTION_CALL, CH5_SETUP, ASK_CALL]
TOKENIZER_CELL, ATTENTION_CELL, ASK_CELL = 1, 3, 5

# JupyterLab settings of the temporary config folder: no pop-up asking to fetch news from the
# internet (this machine has none), which would also cover part of the page.
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False}}

NOTEBOOK_TIMEOUT = 240  # s: running every cell (tokenizer training, model loading) on a busy 2-core machine
UPDATE_TIMEOUT = 60  # s: a widget's round trip to the kernel and back


# JavaScript: the text of every error or stderr output in the notebook (JupyterLab renders
# both with the stderr mime type).
STDERR_OUTPUTS = (
    "Array.from(document.querySelectorAll('.jp-Notebook [data-mime-type=\"application/vnd.jupyter.stderr\"]')).map(e => e.innerText)"
)


def cell(i: int) -> str:
    """JavaScript: code cell ``i`` of the open notebook."""
    return f"document.querySelectorAll('.jp-Notebook .jp-CodeCell')[{i}]"


# --- the server, the browser, the notebook run --------------------------------------------------


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="module")
def server(tmp_root):
    """A JupyterLab server on 127.0.0.1 serving a notebook with the cells above; its URL."""
    if CHROMIUM is None:
        message = "headless Chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": CI must run the live widget test")
        pytest.skip(message)
    root, config = tmp_root / "root", tmp_root / "config"
    root.mkdir()
    for name, values in LAB_SETTINGS.items():
        path = config / "lab" / "user-settings" / name
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(values))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "student.ipynb")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(tmp_root / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_root / "runtime"),
        "IPYTHONDIR": str(tmp_root / "ipython"),
        "OMP_NUM_THREADS": "1",
    }
    token = secrets.token_hex(16)
    log = (tmp_root / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",  # CI runs as root
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port=0",  # a free port, which the server writes into its runtime file
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--KernelManager.shutdown_wait_time=1",  # then the kernel is killed: 4 s less waiting at the end
        ],
        env=env,
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def runtime_file():
            if proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited with status {proc.returncode}:\n{(tmp_root / 'server.log').read_text()[-3000:]}")
            return list((tmp_root / "runtime").glob("jpserver-*.json"))

        info = json.loads(wait_until(runtime_file, 120, "the Jupyter server to start")[0].read_text())
        yield f"http://127.0.0.1:{info['port']}/lab/tree/student.ipynb?token={token}"
    finally:
        stop(proc)  # the server shuts its kernel down on the way out
        log.close()


@pytest.fixture(scope="module")
def page(server):
    """The notebook opened in JupyterLab in headless Chromium, all its cells run from the Run menu."""
    with Page() as page:
        page.goto(server)
        page.wait_for(
            "Array.from(document.querySelectorAll('.jp-StatusBar-TextItem')).some(e => /\\| Idle$/.test(e.textContent))",
            "the notebook's kernel to be ready",
            timeout=120,
        )
        run_menu = "Array.from(document.querySelectorAll('.lm-MenuBar-item')).find(e => e.textContent.trim() === 'Run')"
        run_all = "document.querySelector('.lm-Menu-item[data-command=\"runmenu:run-all\"]')"
        page.click(run_menu)
        page.wait_for(f"!!{run_all}", "the Run menu to open", timeout=10)
        page.click(run_all)
        # Until every cell has its execution count, or one shows an error (Run All stops there).
        progress = page.wait_for(
            "({prompts: Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')).map(p => p.textContent.trim()),"
            f" errors: {STDERR_OUTPUTS}}})",
            "every cell to run",
            until=lambda v: v["errors"] or (len(v["prompts"]) == len(CELLS) and all(re.fullmatch(r"\[\d+\]:", p) for p in v["prompts"])),
            timeout=NOTEBOOK_TIMEOUT,
        )
        assert not progress["errors"], "\n".join(progress["errors"])
        yield page


# --- what the student should see: computed here, from the same data ---------------------------


@pytest.fixture(scope="module")
def student() -> dict:
    """The set-up cells run here too: the tokenizers and models the widgets were given."""
    names: dict = {}
    for code in (CH1_SETUP, CH3_SETUP, CH5_SETUP):
        exec(code, names)
    return names


# --- the tests, in the order a student goes ----------------------------------------------------


def test_cells_are_the_chapters():
    for chapter, cells in CHAPTER_CELLS.items():
        text = (REPO / chapter).read_text()
        assert cells[-1] in text, f"{chapter} no longer shows `{cells[-1]}`: update this test's notebook"
        for line in cells[0].splitlines():
            if line and not line.startswith(("from ", "import ")):  # the chapters group their imports differently
                assert line in text, f"{chapter} no longer sets up its widget with `{line}`: update this test's notebook"


def test_notebook_runs_and_shows_every_widget(page):
    for i in (TOKENIZER_CELL, ATTENTION_CELL, ASK_CELL):
        page.wait_for(f"!!{cell(i)}.querySelector('.jp-OutputArea-output .widget-vbox')", f"the widget of cell {i} to render")
    outputs = page.js("document.querySelector('.jp-Notebook').innerText")
    assert "Error displaying widget" not in outputs and "Traceback" not in outputs, outputs


def type_into(page: Page, element_js: str, text: str) -> None:
    """Click into a text box, select what it holds, and type ``text`` over it."""
    page.click(element_js)
    page.js(f"{element_js}.select()")
    page.type_text(text)


def test_tokenizer_explorer_live(page, student):
    tokenizers = student["tokenizers"]
    widget = f"{cell(TOKENIZER_CELL)}.querySelector('.widget-vbox')"
    view = f"{widget}?.querySelector('.widget-html-content')"
    shown = (
        f"(() => {{ const v = {view}; if (!v) return null; const count = v.querySelector('b');"
        " return {count: count && count.textContent, tokens: Array.from(v.querySelectorAll('span[title]')).map(s => s.textContent),"
        " ids: Array.from(v.querySelectorAll('span[title]')).map(s => Number(s.title.slice(3)))}; })()"
    )

    def visible(tokens):  # the view draws spaces as middle dots and newlines as arrows
        return [t.replace(" ", "\u00b7").replace("\n", "\u21b5") for t in tokens]

    first = page.wait_for(shown, "the first token view", until=lambda v: v and v["count"])
    assert first["count"] == "42 tokens"  # the default text, one token per character

    text = "to be or not"
    type_into(page, f"{widget}.querySelector('textarea')", text)
    got = page.wait_for(shown, "the tokens of the typed text", until=lambda v: v and v["count"] == "12 tokens", timeout=UPDATE_TIMEOUT)
    assert got["tokens"] == visible(list(text))
    assert got["ids"] == tokenizers["characters"].encode(text)

    for name, count in [("words (2000)", 4), ("BPE (512)", None)]:
        page.click(f"Array.from({widget}.querySelectorAll('.widget-toggle-button')).find(b => b.textContent === {json.dumps(name)})")
        want = tokenizers[name]
        got = page.wait_for(
            shown, f"the {name} tokens", until=lambda v, want=want: v and v["ids"] == want.encode(text), timeout=UPDATE_TIMEOUT
        )
        assert got["tokens"] == visible(want.tokens(text))
        assert got["count"] == f"{count or len(want.encode(text))} tokens"
    assert page.js(f"{widget}.querySelector('.widget-toggle-button.mod-active').textContent") == "BPE (512)"


def test_attention_explorer_live(page, student):
    gpt, tokenizer = student["gpt"], student["tokenizer"]
    widget = f"{cell(ATTENTION_CELL)}.querySelector('.widget-vbox')"
    # What the plotly figure in the widget's output shows: its title as drawn, its axis
    # labels and its heat values (plotly keeps the figure's data on its div).
    figure = (
        f"(() => {{ const gd = {widget}?.querySelector('.js-plotly-plot'); const title = gd && gd.querySelector('.gtitle');"
        " if (!title) return null;"
        " return {title: title.textContent, x: gd.data[0].x, z: gd.data[0].z}; })()"
    )
    first = page.wait_for(figure, "the first attention map", until=bool)
    assert first["title"].startswith("layer 0, head 0")

    text = "ROMEO:\nHow now?"
    type_into(page, f"{widget}.querySelector('textarea')", text)
    labels = [f"{t}:{c}" for t, c in enumerate(text)]
    page.wait_for(figure, "the map of the typed text", until=lambda f: f and f["x"] == labels, timeout=UPDATE_TIMEOUT)

    # Move the sliders as a student does, with a click on the track: the far right of the
    # layer slider is the last layer, a third of the way along the head slider is head 1.
    last = gpt.config.n_layers - 1
    page.click(f"{widget}.querySelectorAll('.noUi-base')[0]", across=0.98)
    page.wait_for(figure, "the last layer", until=lambda f: f and f["title"].startswith(f"layer {last}, head 0"), timeout=UPDATE_TIMEOUT)
    page.click(f"{widget}.querySelectorAll('.noUi-base')[1]", across=1 / (gpt.config.n_heads - 1))
    got = page.wait_for(figure, "head 1", until=lambda f: f and f["title"].startswith(f"layer {last}, head 1"), timeout=UPDATE_TIMEOUT)
    assert page.js(f"Array.from({widget}.querySelectorAll('.widget-readout')).map(e => e.textContent)") == [str(last), "1"]
    want = attention_maps(gpt, tokenizer.encode(text))[last, 1]
    assert got["x"] == labels
    torch.testing.assert_close(torch.tensor(got["z"], dtype=torch.float32), want, atol=1e-6, rtol=0)


def test_ask_widget_live(page, student):
    model, tokenizer = student["model"], student["tokenizer"]
    widget = f"{cell(ASK_CELL)}.querySelector('.widget-vbox')"
    shown = f"Array.from({widget}?.querySelectorAll('.lmkit-text') ?? [], s => s.textContent)"
    page.wait_for(shown, "the first answer", until=lambda v: len(v) == 2)

    instruction, given = "Spell this word backwards.", "Romeo"
    type_into(page, f"{widget}.querySelector('input[type=text]')", instruction)
    type_into(page, f"{widget}.querySelector('textarea')", given)
    page.click(f"{widget}.querySelector('button')")
    prompt = f"Q: {instruction}\n{given}\nA: "
    reply = answer(model, tokenizer, instruction, given, max_new_tokens=model.config.context - len(prompt))
    assert reply  # an empty answer is shown as "(empty)", not as model text
    assert page.wait_for(shown, "the answer", until=lambda v: v and v[0] == prompt, timeout=UPDATE_TIMEOUT) == [prompt, reply]
    assert page.js(f"{widget}.querySelector('button').disabled") is False


def test_no_errors_in_the_page_or_the_log(page):
    page.js("0")  # reads the browser's events that arrived since the last command
    assert not page.errors, "\n".join(page.errors)
    # An exception in a widget's callback does not show in the notebook: JupyterLab puts it
    # in the log console, whose status bar item stays hidden until there is an entry.
    status = "document.querySelector('.jp-LogConsoleStatusItem')"
    assert page.js(f"!!{status}"), "JupyterLab's log console status item is missing"
    if not page.js(f"{status}.classList.contains('lm-mod-hidden')"):
        entries = page.js(f"{status}.querySelector('[title]').title")
        page.click(f"{status}.querySelector('[title]')")
        log = page.wait_for("document.querySelector('.jp-LogConsolePanel')?.innerText", "the log console", timeout=10)
        raise AssertionError(f"{entries}:\n{log}")
    stderr = page.js(STDERR_OUTPUTS)
    assert not stderr, "\n".join(stderr)
