"""The README and docs/ say what the code does: generated tables are fresh, every `-S` of a documented
`dvc exp run` names a key params.yaml has (or, with '++', a key whose parent exists), and every documented command
names a real tool, subcommand, target and flag."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys

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


def documented_commands(text: str) -> list[str]:
    """Every command of a page's ```bash blocks: continuation lines joined, comments dropped, split at && ; |."""
    commands = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                commands += [part.strip() for part in re.split(r"&&|;|\|", line) if part.strip()]
    return commands


def help_text(*command: str) -> str:
    done = subprocess.run([sys.executable, *command, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def command_problem(command: str, helps: dict) -> str | None:
    """Why a documented command would not run as written (an unknown tool, subcommand, target or flag), or None.
    dvc lines go through DVC's own argument parser; python tools and scripts must offer each --flag in --help;
    make targets must be in the Makefile; git and cd are left to their owners."""
    from dvc.cli import DvcParserError, parse_args

    words = shlex.split(command)
    tool, args = words[0], words[1:]
    if tool == "dvc":
        try:
            parse_args(args)
        except (DvcParserError, SystemExit) as err:
            return f"{command}: dvc refuses it ({err})"
        return None
    if tool == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        return next((f"{command}: no make target '{t}'" for t in args if t not in targets), None)
    if tool in ("git", "cd"):
        return None
    if not tool.endswith("python"):
        return f"{command}: unknown tool '{tool}'"
    if args[0] == "-m":
        target, args = args[:2], args[2:]
        if importlib.util.find_spec(target[1]) is None:
            return f"{command}: no module {target[1]}"
    else:
        target, args = args[:1], args[1:]
        if not (ROOT / target[0]).is_file():
            return f"{command}: no file {target[0]}"
    flags = [a.split("=")[0] for a in args if a.startswith("--")]
    if flags:
        key = " ".join(target)
        if key not in helps:
            helps[key] = help_text(*target, *(["tests"] if target == ["-m", "pytest"] else []))
        missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", helps[key])]
        if missing:
            return f"{command}: {' '.join(target)} has no {', '.join(missing)}"
    return None


def test_every_documented_command_names_a_real_tool_subcommand_and_flag():
    helps: dict[str, str] = {}
    commands = [c for page in PAGES for c in documented_commands((ROOT / page).read_text())]
    assert len(commands) > 40
    bad = [p for p in (command_problem(c, helps) for c in commands) if p]
    assert not bad, bad
    for broken in ("dvc exp rnu -S 'train.lenet5.lr=1'", "dvc queue start --jobs-x 2", "make tests",
                   "python -m imageclf.cli.predict photos/ --topk 3", ".venv/bin/python bench/nowhere.py"):
        assert command_problem(broken, helps), broken
