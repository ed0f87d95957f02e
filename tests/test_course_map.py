"""Chapter 6's map of the course (chapter -> lmkit modules -> exercise) stays in
step with the repository: every module it names exists, every public module is
named, and every chapter and exercise has its row."""

from __future__ import annotations

import re

from course import ASSIGNMENTS, REPO

CHAPTER = REPO / "book" / "06_what_models_learn.md"


def map_rows() -> list[list[str]]:
    text = CHAPTER.read_text()
    start = text.index("| chapter | `lmkit` modules |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def public_modules() -> set[str]:
    found = {p.stem for p in (REPO / "lmkit").glob("*.py") if not p.stem.startswith("_")}
    found |= {p.parent.name for p in (REPO / "lmkit").glob("*/__init__.py")}
    return found


def test_map_names_every_chapter_and_exercise_once():
    rows = map_rows()
    chapters = sorted(p.stem for p in (REPO / "book").glob("[0-9][0-9]_*.md"))
    assert [re.search(r"\{doc\}`(\w+)`", r[0]).group(1) for r in rows] == chapters
    assert [re.search(r"\{doc\}`exercises/(\w+)`", r[2]).group(1) for r in rows] == list(ASSIGNMENTS)


def test_map_names_existing_modules_and_all_of_them():
    named = {m for r in map_rows() for m in re.findall(r"`(\w+)`", r[1])}
    below = CHAPTER.read_text().split("| chapter | `lmkit` modules |")[1].split("\n\n")[1]
    serving = set(re.findall(r"`(\w+)`", below))  # the sentence under the table: modules no chapter teaches
    assert named <= public_modules(), f"not in lmkit: {sorted(named - public_modules())}"
    missing = public_modules() - named - serving
    assert not missing, f"lmkit modules the map does not name: {sorted(missing)}"
