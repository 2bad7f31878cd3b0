"""dvc.yaml names exactly the project modules each stage imports, so DVC re-runs a stage when (and only when) code
it runs changed; ci/dvc_deps.py writes them."""

from __future__ import annotations

import ast
import importlib.util

import yaml
from conftest import ROOT


def _generator():
    spec = importlib.util.spec_from_file_location("dvc_deps", ROOT / "ci/dvc_deps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stage_groups() -> dict[str, dict]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def test_dvc_yaml_code_deps_are_the_import_closure_of_each_stage():
    text = (ROOT / "dvc.yaml").read_text()
    assert _generator().render(text) == text, "dvc.yaml deps are stale: run .venv/bin/python ci/dvc_deps.py"


def test_the_closure_follows_nested_packages_and_function_level_imports(tmp_path):
    deps = _generator()
    pkg = tmp_path / "imageclf" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "imageclf" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from imageclf.sub import b\n")
    (pkg / "b.py").write_text("def f():\n    from imageclf.sub.c import g\n")
    (pkg / "c.py").write_text("g = 1\n")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "s.py").write_text("import imageclf.sub.a\n")
    assert deps.closure(tmp_path / "stages" / "s.py", tmp_path) == [
        "imageclf/sub/a.py", "imageclf/sub/b.py", "imageclf/sub/c.py", "stages/s.py"]


def test_package_init_files_hold_no_code():
    # the closure leaves __init__.py files out: they must not import anything (deps stay narrow and complete)
    for init in (ROOT / "imageclf").rglob("__init__.py"):
        body = [node for node in ast.parse(init.read_text()).body
                if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        assert not body, f"{init.relative_to(ROOT)} holds code"


def test_from_scratch_stages_never_read_transfer_code():
    for name in ("train", "evaluate"):
        stage = stage_groups()[name]
        assert not {"imageclf/models/transfer.py", "imageclf/models/efficientnet_lite.py",
                    "imageclf/models/features.py"} & set(stage["deps"]), name
        assert "data/features" not in stage["deps"] and "features" not in stage["params"]


def test_transfer_stages_never_read_the_from_scratch_families():
    for name in ("train_transfer", "evaluate_transfer"):
        assert "imageclf/models/scratch.py" not in stage_groups()[name]["deps"], name


def test_no_stage_imports_another_stage():
    for path in (ROOT / "stages").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
            assert not any(n == "stages" or n.startswith("stages.") for n in names), f"{path.name} imports a stage"
