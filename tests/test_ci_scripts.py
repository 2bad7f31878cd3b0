"""The CI scripts as CI runs them: ci/small_run.sh, then ci/check_against_main.sh against an origin's main."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, base_params, make_folder_tree
from test_pipeline import git, scratch_repo


def run(repo: Path, *command: str) -> subprocess.CompletedProcess:
    venv = Path(sys.executable).parent
    return subprocess.run(command, cwd=repo, capture_output=True, text=True,
                          env={"PATH": f"{venv}:/usr/bin:/bin", "HOME": str(repo.parent), "DVC_NO_ANALYTICS": "1",
                               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})


def test_the_check_against_main_reads_mains_run_and_fails_a_regression(tmp_path):
    """main and the checkout are the same commit, so main's small run (made by the script in a worktree) has exactly
    the checkout's gated metrics; then the checkout's mlp is made 50 points worse and the gate fails naming it."""
    params = base_params()
    params["data"].update(source="folder", path=str(make_folder_tree(tmp_path / "images", {"daisy": 8, "rose": 8})))
    params["split"]["fractions"] = {"train": 0.5, "val": 0.25, "test": 0.25}
    params["prepare"].update(image_size=12, workers=2)
    params["train_defaults"].update(batch_size=4)
    params["features"] = {}
    params["export"].update(formats=["onnx"], latency_runs=3)
    repo = scratch_repo(tmp_path, params)
    shutil.copytree(ROOT / "ci", repo / "ci", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / ".venv").symlink_to(Path(sys.executable).parents[1], target_is_directory=True)
    (repo / ".gitignore").write_text("/.venv\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "main")
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(tmp_path / "origin.git"))
    git(repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(repo, "push", "-q", "origin", "HEAD:main")

    small = run(repo, "bash", "ci/small_run.sh")
    assert small.returncode == 0, small.stdout[-3000:] + small.stderr[-3000:]
    assert run(repo, sys.executable, "-m", "imageclf.cli.check", "--save", "ours.json").returncode == 0
    ours = json.loads((repo / "ours.json").read_text())
    mlp = repo / "reports/eval/mlp/metrics.json"
    metrics = json.loads(mlp.read_text())
    metrics["test"]["accuracy"] -= 0.5
    mlp.write_text(json.dumps(metrics))

    checked = run(repo, "bash", "ci/check_against_main.sh")
    assert checked.returncode == 1, checked.stdout[-3000:] + checked.stderr[-3000:]
    main = json.loads((repo / "reports/baseline-main.json").read_text())
    gated = ("test.accuracy", "test.macro_f1")
    assert {f: {k: v[k] for k in gated} for f, v in main.items() if "/eval/" in f} == \
        {f: {k: v[k] for k in gated} for f, v in ours.items() if "/eval/" in f}
    failed = [line for line in (repo / "reports/check.md").read_text().splitlines() if "REGRESSION" in line]
    assert len(failed) == 1 and failed[0].startswith("| reports/eval/mlp/metrics.json | test.accuracy |"), failed
    assert (repo / "reports/check-paired.md").is_file()
    assert not any(".venv" in line for line in run(repo, "git", "worktree", "list").stdout.splitlines()[1:])
