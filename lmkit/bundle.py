"""Build what students get: the exercises, the built book, lmkit and its data.

    python -m lmkit.bundle --out dist/student      # after building the book (README, command 1)

The bundle holds no solution code and no hidden test: it is made from the
release (``exercises/``), never from ``solutions/``, and ``tests/test_bundle.py``
checks every solution cell and hidden test against its files.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = """# Transformers and Language Models, hands-on: student bundle

This folder is everything you need for the course: the book (`book/index.html`,
open it in a browser; it works offline), the graded exercises (`exercises/`) and
the course's helper package `lmkit` with its data.

## Set up (once)

You need Python 3.11 or newer with pip. From this folder:

```bash
python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e ".[student]"
```

(`constraints.txt` pins the versions the course is tested with; if your platform
has no such wheel, drop `-c constraints.txt`.)

## Do an exercise

1. Start JupyterLab here: `.venv/bin/jupyter lab`.
2. Open `exercises/NN_name/NAME.ipynb`. Replace each `raise NotImplementedError()`
   with your code (keep the function names and arguments), answer the written
   question, and run each test cell: a failing test says what is wrong.
   Passing the visible tests is a good sign; hidden tests of the same behaviour
   decide the grade.
3. Before submitting, run *Kernel -> Restart Kernel and Run All Cells*, then
   submit the notebook file as your course tells you.

Each task is graded on its own: a later task is checked with the course's
reference for the earlier functions it calls, so one mistake costs one task.
Calling `lmkit`'s own implementation of the very thing a task asks for earns
nothing for that task. Your code is graded in a sandbox, one call at a time, with
a time limit per call (about 25 s).
"""


def build(out: Path, book: Path | None) -> Path:
    """Write the bundle folder ``out`` and ``out.zip``; returns the zip's path."""
    out = out.resolve()
    if out == REPO or REPO in out.parents and out.relative_to(REPO).parts[0] in ("lmkit", "exercises", "solutions", "book"):
        raise ValueError(f"choose an output folder outside the course's own folders, not {out}")
    if book is not None and not (book / "index.html").exists():
        raise FileNotFoundError(f"no built book at {book}: build it first (README, command 1) or pass --no-book")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    shutil.copytree(REPO / "exercises", out / "exercises", ignore=ignore)
    shutil.copytree(REPO / "lmkit", out / "lmkit", ignore=ignore)
    if book is not None:
        shutil.copytree(book, out / "book", ignore=shutil.ignore_patterns(".buildinfo", "_sources", ".doctrees"))
    shutil.copy(REPO / "pyproject.toml", out / "pyproject.toml")
    shutil.copy(REPO / ".ci" / "constraints.txt", out / "constraints.txt")
    (out / "README.md").write_text(README)
    return Path(shutil.make_archive(str(out), "zip", root_dir=out.parent, base_dir=out.name))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, default=REPO / "dist" / "student", help="bundle folder to write (a .zip of it is written beside it)"
    )
    parser.add_argument("--book", type=Path, default=REPO / "_build" / "html", help="the built book to include (default: _build/html)")
    parser.add_argument("--no-book", action="store_true", help="leave the built book out")
    args = parser.parse_args(argv)
    archive = build(args.out, None if args.no_book else args.book)
    print(f"wrote {args.out} and {archive}")


if __name__ == "__main__":
    main()
