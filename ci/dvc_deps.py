"""Write the code deps of every dvc.yaml stage from the imports of its `python -m stages.<name>` module, so DVC re-runs
a stage when (and only when) code it runs changed (a test fails when dvc.yaml is stale):

    .venv/bin/python ci/dvc_deps.py

A stage's code deps are its module and every project module that module imports, directly or through another,
function-level imports included. Package `__init__.py` files hold no code (a test keeps it so) and are not listed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("imageclf", "stages")


def module_file(dotted: str, root: Path = ROOT) -> Path | None:
    """The project file of a dotted module name (a package's __init__.py), or None outside the project."""
    if dotted.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*dotted.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imports(path: Path, root: Path = ROOT) -> set[Path]:
    """Project module files a file imports anywhere in it (function-level imports included)."""
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
            for end in range(2, len(parts) + 1):  # importing a.b.c runs a.b too
                file = module_file(".".join(parts[:end]), root)
                if file is not None:
                    found.add(file)
    return found


def closure(module: Path, root: Path = ROOT) -> list[str]:
    """Sorted POSIX paths of `module` and every project module it imports, without package __init__ files."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imports(path, root))
    return sorted(p.relative_to(root).as_posix() for p in seen if p.name != "__init__.py")


def render(text: str, root: Path = ROOT) -> str:
    """dvc.yaml's text with each stage's `.py` deps replaced by its import closure (first, sorted); other deps
    keep their order after them."""
    lines, out, module, i = text.split("\n"), [], None, 0
    while i < len(lines):
        line = lines[i]
        command = re.match(r"\s+cmd: python -m stages\.(\w+)", line)
        if command:
            module = root / "stages" / f"{command.group(1)}.py"
        deps = re.match(r"(\s+)deps:$", line)
        out.append(line)
        i += 1
        if not deps:
            continue
        listed = []
        while i < len(lines) and re.match(r"\s+- ", lines[i]):
            listed.append(lines[i].strip()[2:])
            i += 1
        item = deps.group(1) + "  - "
        out += [item + dep for dep in closure(module, root)]
        out += [item + dep for dep in listed if not dep.endswith(".py")]
    return "\n".join(out)


if __name__ == "__main__":
    dvc_yaml = ROOT / "dvc.yaml"
    dvc_yaml.write_text(render(dvc_yaml.read_text()))
    print(f"wrote the code deps of every stage in {dvc_yaml}")
