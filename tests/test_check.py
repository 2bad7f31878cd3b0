"""Metric regression check: rules by hand, and the command against a git ref and a saved baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imageclf.core.errors import UserError
from imageclf.report import metric_gate

ROOT = Path(__file__).resolve().parents[1]
ACC = {"files": "reports/eval/*/metrics.json", "metric": "test.accuracy", "direction": "higher", "tolerance": 0.01,
       "relative": False}
TIME = {"files": "reports/train/*/metrics.json", "metric": "train_time_s", "direction": "lower", "tolerance": 50,
        "relative": True}
REPORTED = {"files": "reports/train/*/metrics.json", "metric": "train_time_s"}


def test_rules_by_hand():
    base = {"reports/eval/a/metrics.json": {"test.accuracy": 0.90}, "reports/train/a/metrics.json":
            {"train_time_s": 100.0}, "reports/eval/b/metrics.json": {"test.accuracy": 0.80}}
    now = {"reports/eval/a/metrics.json": {"test.accuracy": 0.895}, "reports/train/a/metrics.json":
           {"train_time_s": 151.0}, "reports/eval/c/metrics.json": {"test.accuracy": 0.99}}
    rows = {(r.file, r.metric): r for r in metric_gate.compare([ACC, TIME], base, now)}
    assert rows[("reports/eval/a/metrics.json", "test.accuracy")].verdict == "ok"  # -0.005 within 0.01
    assert rows[("reports/train/a/metrics.json", "train_time_s")].verdict == "REGRESSION"  # +51% > 50%
    assert rows[("reports/eval/b/metrics.json", "test.accuracy")].verdict == "FAIL: missing in current"
    assert rows[("reports/eval/c/metrics.json", "test.accuracy")].verdict == "FAIL: missing in baseline"
    assert rows[("reports/eval/a/metrics.json", "test.accuracy")].change == pytest.approx(-0.005)
    edge = metric_gate.compare([ACC], {"x/eval/a": {}}, {"reports/eval/a/metrics.json": {"test.accuracy": 0.79}})
    assert [r.verdict for r in edge] == ["FAIL: missing in baseline"]
    table = metric_gate.markdown(metric_gate.compare([ACC], base, now))
    assert table.splitlines()[0] == "| file | metric | baseline | current | change | allowed | verdict |"
    with pytest.raises(UserError, match=r"'check.rules\[0\].direction' must be one of higher, lower"):
        metric_gate.compare([{**ACC, "direction": "up"}], base, now)


def test_timings_are_reported_but_never_gated():
    base = {"reports/train/a/metrics.json": {"train_time_s": 100.0}}
    now = {"reports/train/a/metrics.json": {"train_time_s": 400.0}}
    rows = metric_gate.compare([], base, now, [REPORTED])
    assert [(r.metric, r.change, r.verdict) for r in rows] == [("train_time_s", 300.0, metric_gate.NOT_GATED)]


def run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imageclf.cli.check", *args], cwd=repo, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(repo)})


def write_metrics(repo: Path, accuracy: float, seconds: float) -> None:
    for folder, data in (("eval", {"test": {"accuracy": accuracy}}), ("train", {"train_time_s": seconds})):
        path = repo / f"reports/{folder}/m1/metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text(yaml.safe_dump({"check": {"baseline": "main", "rules": [ACC],
                                                                "report": [REPORTED]},
                                                      "compare": {"alpha": 0.05, "target_val_accuracy": 0.9}}))
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"metrics": ["reports/eval/m1/metrics.json",
                                                               "reports/train/m1/metrics.json"]}))
    write_metrics(repo, 0.90, 100)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    for cmd in (["add", "-A"], ["-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "baseline"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    return repo


def test_check_against_a_git_ref(repo):
    write_metrics(repo, 0.895, 120)
    ok = run(repo)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "check: 1 ok, 0 failed (baseline main); 1 timings reported, not gated" in ok.stdout
    write_metrics(repo, 0.85, 120)
    bad = run(repo)
    assert bad.returncode == 1
    row = next(line for line in bad.stdout.splitlines() if "test.accuracy" in line)
    assert row == "| reports/eval/m1/metrics.json | test.accuracy | 0.9 | 0.85 | -0.05 | -0.01 | REGRESSION |"
    assert "REGRESSION" in (repo / "reports/check.md").read_text()


def test_missing_metric_fails(repo):
    (repo / "reports/eval/m1/metrics.json").write_text(json.dumps({"test": {}}))
    result = run(repo)
    assert result.returncode == 1 and "FAIL: missing in current" in result.stdout


def test_saved_json_baseline(repo):
    saved = run(repo, "--save", "baseline.json")
    assert saved.returncode == 0 and json.loads((repo / "baseline.json").read_text())[
        "reports/eval/m1/metrics.json"] == {"test.accuracy": 0.9}
    write_metrics(repo, 0.90, 200)
    result = run(repo, "--baseline", "baseline.json")
    assert result.returncode == 0 and "train_time_s | 100 | 200 | 100 | - | reported, not gated" in result.stdout


def test_unknown_baseline_is_one_line(repo):
    result = run(repo, "--baseline", "no-such-branch")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: check.baseline: 'no-such-branch' is neither a baseline JSON")


def write_predictions(repo: Path, right: int, total: int = 300, first_wrong: int = 0) -> None:
    """predictions.csv of model m1: `right` correct answers, the wrong ones starting at image first_wrong."""
    wrong = set(range(first_wrong, first_wrong + total - right))
    rows = ["path,true,predicted,confidence"] + [f"img{i}.png,a,{'b' if i in wrong else 'a'},0.9"
                                                 for i in range(total)]
    path = repo / "reports/eval/m1/predictions.csv"
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def predictions_repo(repo: Path) -> Path:
    write_predictions(repo, right=270)
    for cmd in (["add", "-A"], ["-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "predictions"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    return repo


def test_paired_check_fails_only_on_a_significantly_worse_model(predictions_repo):
    repo = predictions_repo
    same = run(repo, "--paired")
    assert same.returncode == 0 and "check --paired: 1 ok, 0 failed (baseline main)" in same.stdout, same.stderr
    write_predictions(repo, right=266, first_wrong=10)  # 4 fewer right, 20 images changed sides: noise
    noise = run(repo, "--paired")
    assert noise.returncode == 0, noise.stdout
    write_predictions(repo, right=240)  # 30 more mistakes, none fixed
    worse = run(repo, "--paired")
    assert worse.returncode == 1
    row = next(line for line in worse.stdout.splitlines() if "predictions.csv" in line)
    assert "| 0.9 | 0.8 | 30 | 0 |" in row and row.endswith("| REGRESSION: significantly worse |")
    write_predictions(repo, right=290)  # better is never a failure
    assert run(repo, "--paired").returncode == 0


def test_paired_check_against_a_baseline_run_directory(predictions_repo, tmp_path):
    base = tmp_path / "baseline-run"
    (base / "reports/eval/m1").mkdir(parents=True)
    (base / "reports/eval/m1/predictions.csv").write_text(
        (predictions_repo / "reports/eval/m1/predictions.csv").read_text())
    write_predictions(predictions_repo, right=240)
    assert run(predictions_repo, "--paired", "--baseline", str(base)).returncode == 1
    (base / "reports/eval/m1/predictions.csv").unlink()
    missing = run(predictions_repo, "--paired", "--baseline", str(base))
    assert missing.returncode == 1 and "FAIL: missing in baseline" in missing.stdout
