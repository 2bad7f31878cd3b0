"""The real `dvc repro` on a tiny fixture, in a scratch git repository."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, base_params, make_folder_tree

PROJECT_FILES = ("dvc.yaml", "stages", "imageclf", ".dvcignore")


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True,
                            env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(repo.parent),
                                 "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(repo)})
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def scratch_repo(tmp_path: Path, params: dict) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, repo / name)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    return repo


def tiny_params(images: Path) -> dict:
    params = base_params()
    root = images if images.exists() else make_folder_tree(images, {"daisy": 8, "rose": 8})
    params["data"].update(source="folder", path=str(root))
    params["split"]["fractions"] = {"train": 0.5, "val": 0.25, "test": 0.25}
    params["prepare"].update(image_size=12, workers=2)
    params["train_defaults"].update(epochs=2, batch_size=4)
    params["models"] = {"scratch": ["m1", "m2"], "transfer": []}
    params["features"] = {}  # the features stage runs and writes an empty set (transfer models: test_transfer.py)
    params["train"] = {"m1": {"family": "lenet5", "filters": [4, 8], "dense": [8], "lr": 0.001},
                       "m2": {"family": "mlp", "dense": [8]}}
    return params


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def committed_repro(tmp_path: Path, params: dict) -> tuple[Path, str]:
    """A scratch repo after `dvc repro` with everything committed; also returns what the run printed."""
    repo = scratch_repo(tmp_path, params)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")  # dvclive needs a commit
    output = dvc(repo, "repro").stdout
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    return repo, output


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> tuple[Path, str, Path]:
    """One full run shared by this module's tests (in file order: the later ones run experiments in it)."""
    base = tmp_path_factory.mktemp("pipeline")
    images = base / "images"
    repo, output = committed_repro(base, tiny_params(images))
    return repo, output, images


def test_dvc_repro_runs_every_stage_then_is_a_no_op(baseline):
    repo, first, _ = baseline
    assert stages_run(first) == ["download", "split", "prepare", "features", "train@m1", "train@m2",
                                 "evaluate@m1", "evaluate@m2", "compare"]
    assert '"images": 16' in dvc(repo, "metrics", "show", "--json").stdout
    again = dvc(repo, "repro")
    assert stages_run(again.stdout) == [] and "up to date" in again.stdout


def test_editing_transfer_code_or_features_reruns_no_from_scratch_model(baseline):
    repo, _, _ = baseline
    lite0 = repo / "imageclf/efficientnet_lite.py"
    original = lite0.read_text()
    try:
        lite0.write_text(original + "\n# an edit\n")
        assert set(json.loads(dvc(repo, "status", "--json").stdout)) == {"features"}
        lite0.write_text(original)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["features"] = {"lite0": {"backbone": "efficientnet_lite0", "weights": "imagenet", "input_size": 32,
                                        "pooling": "avg"}}
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert set(json.loads(dvc(repo, "status", "--json").stdout)) == {"features"}
    finally:
        git(repo, "checkout", "--", ".")
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}


def test_two_runs_from_scratch_are_identical(baseline, tmp_path):
    first, _, images = baseline
    second, _ = committed_repro(tmp_path, tiny_params(images))
    repos = (first, second)
    for split in ("train", "val", "test"):
        a, b = ((r / f"data/split/{split}.csv").read_bytes() for r in repos)
        assert a == b
    for model in ("m1", "m2"):
        for path, timing in ((f"reports/eval/{model}/metrics.json", "inference"),
                             (f"reports/train/{model}/metrics.json", "train_time_s")):
            a, b = (json.loads((r / path).read_text()) for r in repos)
            for run in (a, b):  # wall-clock figures differ by nature
                run.pop(timing)
                run.get("train", {}).pop("time_s", None)
            assert a == b


def test_changing_one_model_reruns_exactly_its_stages(baseline):
    repo, _, _ = baseline
    exp = dvc(repo, "exp", "run", "-S", "train.m1.lr=0.01")
    assert stages_run(exp.stdout) == ["train@m1", "evaluate@m1", "compare"]
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    assert "0.01" in json.dumps(shown)
    diff = json.loads(dvc(repo, "metrics", "diff", "--json").stdout)
    assert "eval.loss" in diff["reports/train/m1/metrics.json"]  # the retrained model's own log changed
    assert "reports/eval/m2/metrics.json" not in diff  # m2 did not change
    plots = dvc(repo, "plots", "diff", "HEAD", "--json").stdout
    for plot in ("reports/eval/m1/confusion.json", "reports/eval/m1/confusion_normalized.json",
                 "reports/train/m1/plots/metrics"):
        assert plot in plots


def test_queued_two_point_sweep_gives_both_experiments_metrics(baseline):
    repo, _, _ = baseline
    dvc(repo, "exp", "run", "--queue", "-S", "train.m1.lr=0.002,0.004")
    dvc(repo, "queue", "start", "-j", "1")
    deadline = time.time() + 400
    while time.time() < deadline:
        status = dvc(repo, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    assert status.count("Success") == 2, status
    table = pd.read_csv(io.StringIO(dvc(repo, "exp", "show", "--csv").stdout))
    queued = table[table["Experiment"].notna() & (table["typ"] != "baseline")]
    accuracy = next(c for c in table.columns if "eval/m1" in c and c.endswith("test.accuracy"))
    lr = next(c for c in table.columns if c.endswith("train.m1.lr"))
    swept = queued[queued[lr].astype(float).isin([0.002, 0.004])]
    assert sorted(swept[lr].astype(float)) == [0.002, 0.004]
    assert swept[accuracy].notna().all()
