"""The README's generated tables are what their sources say today (ci/readme_tables.py refreshes them)."""

from __future__ import annotations

import importlib.util

from conftest import ROOT


def test_readme_tables_match_the_registry_and_the_last_pipeline_run():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "ci/readme_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    readme = (ROOT / "README.md").read_text()
    assert tables.render(readme) == readme, "README tables are stale: run .venv/bin/python ci/readme_tables.py"


def test_readme_commands_use_the_current_params_layout():
    readme = (ROOT / "README.md").read_text()
    assert "-S 'models=[" not in readme and "-S train.lenet5.lr=" not in readme  # models is {scratch, transfer}
