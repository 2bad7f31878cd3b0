"""dvc.yaml names exactly the project modules each stage imports, so DVC re-runs a stage when (and only when) code
it runs changed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

PACKAGES = ("imageclf", "stages")


def project_imports(path: Path) -> set[Path]:
    """Project modules a file imports anywhere in it (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] in PACKAGES and len(parts) > 1 and (ROOT / parts[0] / f"{parts[1]}.py").is_file():
                found.add(ROOT / parts[0] / f"{parts[1]}.py")
    return found


def closure(module: Path) -> set[str]:
    seen: set[Path] = set()
    todo = [module]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(project_imports(path))
    return {p.relative_to(ROOT).as_posix() for p in seen}


def stage_groups() -> dict[str, dict]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


@pytest.mark.parametrize("name", list(stage_groups()))
def test_stage_deps_are_exactly_the_code_it_imports(name):
    stage = stage_groups()[name]
    module = re.match(r"python -m stages\.(\w+)", stage["cmd"]).group(1)
    imported = closure(ROOT / "stages" / f"{module}.py")
    listed = {d for d in stage["deps"] if isinstance(d, str) and d.endswith(".py")}
    assert not imported - listed, f"dvc.yaml stage '{name}' misses deps {sorted(imported - listed)}"
    assert not listed - imported, f"dvc.yaml stage '{name}' lists code it never imports: {sorted(listed - imported)}"


def test_from_scratch_stages_never_read_transfer_code():
    for name in ("train", "evaluate"):
        stage = stage_groups()[name]
        assert not {"imageclf/transfer.py", "imageclf/efficientnet_lite.py", "imageclf/features.py"} & set(
            stage["deps"]), name
        assert "data/features" not in stage["deps"] and "features" not in stage["params"]


def test_the_closure_sees_function_level_imports(tmp_path):
    # stages import TensorFlow-heavy modules inside main(): those count as deps too
    assert "imageclf/training.py" in closure(ROOT / "stages" / "train.py")
    assert "imageclf/transfer.py" in closure(ROOT / "stages" / "evaluate_transfer.py")
