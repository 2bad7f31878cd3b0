"""The README and docs/ say what the code does: generated tables are fresh, and every `-S` of a documented
`dvc exp run` names a key params.yaml has (or, with '++', a key whose parent exists)."""

from __future__ import annotations

import importlib.util
import re
import shlex

import pytest
from conftest import ROOT, base_params

PAGES = sorted(["README.md", *(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))])


def _doc_tables():
    spec = importlib.util.spec_from_file_location("doc_tables", ROOT / "ci/doc_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_tables_match_the_registry_and_the_last_pipeline_run():
    stale = [page for page, text in _doc_tables().refreshed().items() if (ROOT / page).read_text() != text]
    assert not stale, f"generated tables are stale in {stale}: run .venv/bin/python ci/doc_tables.py"


def set_options(text: str) -> list[str]:
    """The -S values of every `dvc exp run` command line in a page (continuation lines joined)."""
    commands = re.findall(r"dvc exp run (?:\\\n|[^\n`])*", text)
    values = []
    for command in commands:
        words = shlex.split(command.replace("\\\n", " ").split("#")[0])
        values += [words[i + 1] for i, word in enumerate(words[:-1]) if word == "-S" and words[i + 1] != "..."]
    return values


def problem(option: str, params: dict) -> str | None:
    """Why `dvc exp run -S option` would fail on params.yaml, or None."""
    key = option.split("=", 1)[0]
    add = key.startswith("++")
    path = key.lstrip("+").split(".")
    node = params
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if not isinstance(node, dict) or (part not in node and not (add and last)):
            return f"'{key}': params.yaml has no '{'.'.join(path[:depth + 1])}'" + ("" if add else " (add it with ++)")
        node = node.get(part)
    return None


@pytest.mark.parametrize("page", PAGES)
def test_documented_sweeps_name_existing_params(page):
    params = base_params()
    bad = [p for p in (problem(o, params) for o in set_options((ROOT / page).read_text())) if p]
    assert not bad, bad


def test_the_check_catches_a_key_an_entry_does_not_have():
    # the line that once failed as written: train.lenet5 has no lr key, so DVC says "Key 'lr' is not in struct"
    options = set_options("dvc exp run --queue -S 'train.lenet5.lr=0.001,0.0005'\n")
    assert options == ["train.lenet5.lr=0.001,0.0005"]
    said = "'train.lenet5.lr': params.yaml has no 'train.lenet5.lr' (add it with ++)"
    assert problem(options[0], base_params()) == said
    assert problem("++train.lenet5.lr=0.001", base_params()) is None
    assert problem("++train.nosuch.lr=0.001", base_params()) is not None
