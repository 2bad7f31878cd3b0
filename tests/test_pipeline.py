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

PROJECT_FILES = ("dvc.yaml", "stages", "imageclf", ".dvcignore", "reports/seeds/.gitkeep")


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
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, repo / name)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    shutil.copy(ROOT / ".dvc/config", repo / ".dvc/config")  # the project's DVC settings (cache link type)
    return repo


def tiny_params(images: Path) -> dict:
    """Two from-scratch entries and one frozen Lite0 head on a cached feature set, each a few hundred weights."""
    params = base_params()
    root = images if images.exists() else make_folder_tree(images, {"daisy": 8, "rose": 8})
    params["data"].update(source="folder", path=str(root))
    params["split"]["fractions"] = {"train": 0.5, "val": 0.25, "test": 0.25}
    params["prepare"].update(image_size=12, workers=2)
    params["train_defaults"].update(epochs=2, batch_size=4)
    params["models"] = {"scratch": ["m1", "m2"], "transfer": ["t1"]}
    params["features"] = {"lite0": {"backbone": "efficientnet_lite0", "weights": "imagenet", "input_size": 32,
                                    "pooling": "avg"}}
    params["train"] = {"m1": {"family": "lenet5", "filters": [4, 8], "dense": [8], "lr": 0.001},
                       "m2": {"family": "mlp", "dense": [8]},
                       "t1": {"family": "transfer", "features": "lite0", "dense": [8]}}
    params["export"].update(model="m1", latency_runs=3)  # choosing "best" is test_export's; Lite0's export is slow
    params["audit"].update(labels=True, images=True, features="lite0")  # the audit under dvc repro, on t1's set
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
def template(tmp_path_factory) -> tuple[Path, str, Path]:
    """One full run, built once per worker; tests get their own copy of it (baseline)."""
    base = tmp_path_factory.mktemp("pipeline")
    images = base / "images"
    repo, output = committed_repro(base, tiny_params(images))
    return repo, output, images


@pytest.fixture
def baseline(template, tmp_path) -> tuple[Path, str, Path]:
    """This test's own copy of the committed run (git history, DVC cache and workspace): what one test changes or
    runs there no other test sees."""
    repo, output, images = template
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True)
    return copy, output, images


def test_dvc_repro_runs_every_stage_then_is_a_no_op(baseline, template):
    repo, first, _ = baseline
    assert stages_run(first) == ["download", "split", "prepare", "features", "audit", "train@m1", "train@m2",
                                 "train_transfer@t1", "evaluate@m1", "evaluate@m2", "evaluate_transfer@t1",
                                 "compare", "export"]
    assert '"images": 16' in dvc(repo, "metrics", "show", "--json").stdout
    shard = next((template[0] / "data/prepared").glob("train-*.bin"))  # where dvc repro ran (a copy has no links)
    assert shard.stat().st_nlink == 2  # stored once: the workspace file is a hard link into DVC's cache
    assert not (repo / "data/raw/images.zip").exists()  # the folder is read in place, not copied
    again = dvc(repo, "repro")
    assert stages_run(again.stdout) == [] and "up to date" in again.stdout


def test_export_writes_every_format_checked_against_keras_with_a_model_card(baseline):
    repo, _, _ = baseline
    exported = json.loads((repo / "reports/export/metrics.json").read_text())
    assert exported["model"] == "m1"
    for fmt, file in (("tf_saved_model", "saved_model"), ("onnx", "model.onnx"), ("litert", "model.tflite")):
        facts = exported[fmt]
        assert (repo / "export" / file).exists() and facts["size_mb"] > 0
        assert facts["max_abs_diff"] <= 1e-4 and facts["top1_agreement"] == 1.0
        assert facts["latency_ms"] > 0 and facts["images_per_s"] > 0
    assert (repo / "export/classes.txt").read_text().split() == ["daisy", "rose"]
    card = (repo / "export/model_card.md").read_text()
    assert card == (repo / "reports/export/model_card.md").read_text()
    head = subprocess.run(["git", "rev-parse", "HEAD~1"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert f"git revision: `{head}" in card  # the commit the run started from
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train@m1"]
    model_md5 = next(o["md5"] for o in lock["outs"] if o["path"].endswith("model.keras"))
    assert model_md5 in card
    assert "0. daisy\n1. rose" in card and "train 8, val 4, test 4" in card
    assert "uint8 array [batch, 12, 12, 1] with values 0-255" in card and "8-bit grayscale" in card
    assert "stretched to 12x12" in card
    assert "| activation | relu |" in card and "| l2 | 0.0 |" in card  # family defaults the entry does not set
    fitted = json.loads((repo / "reports/eval/m1/metrics.json").read_text())["test"]["calibrated"]
    assert (f"fitted on 4 val images, softmax(log p / {fitted['temperature']:.4g}), gives ECE {fitted['ece']:.3f}"
            in card)


def test_the_exported_model_is_a_registry_artifact_that_dvc_artifacts_get_fetches(baseline, tmp_path):
    """dvc.yaml declares export/ under artifacts: (type model); a Git tag registers a version, and `dvc artifacts get`
    from another directory fetches exactly the exported files of that version."""
    repo, _, _ = baseline
    git(repo, "tag", "-a", "image-classifier@v0.1.0", "-m", "a registered version")
    dvc(tmp_path, "artifacts", "get", str(repo), "image-classifier", "-o", "fetched")  # from outside the project
    fetched = tmp_path / "fetched"
    for name in ("model.onnx", "model.tflite", "classes.txt", "model_card.md", "saved_model/saved_model.pb"):
        assert (fetched / name).read_bytes() == (repo / "export" / name).read_bytes(), name
    from dvc.repo import Repo

    artifact = Repo(str(repo)).artifacts.read()["dvc.yaml"]["image-classifier"]
    assert artifact.type == "model" and "export.model m1, data.source folder" in artifact.desc


def test_a_format_that_disagrees_with_keras_fails_the_export_naming_it(baseline, tmp_path, monkeypatch):
    repo, _, _ = baseline
    work = tmp_path / "work"
    for name in ("params.yaml", "dvc.lock", "data/prepared", "models", "reports/eval"):
        src, dst = repo / name, work / name
        shutil.copytree(src, dst) if src.is_dir() else (dst.parent.mkdir(parents=True, exist_ok=True),
                                                         shutil.copy(src, dst))
    monkeypatch.chdir(work)
    from imageclf.core.errors import UserError
    from imageclf.deploy import export
    from stages import export as stage

    honest = export.runner
    monkeypatch.setattr(export, "runner", lambda fmt, path: (
        (lambda x: honest(fmt, path)(x) + 0.01) if fmt == "onnx" else honest(fmt, path)))
    with pytest.raises(UserError, match=r"^export: onnx \(max \|p difference\| 0\.01\) disagree"):
        stage.main.__wrapped__()
    facts = json.loads((work / "reports/export/metrics.json").read_text())
    assert facts["tf_saved_model"]["max_abs_diff"] <= 1e-4 and facts["onnx"]["max_abs_diff"] > 0.009


def predict(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imageclf.cli.predict", *args], cwd=repo, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo), "HOME": str(repo.parent)})


def test_predict_on_the_test_images_gives_evaluates_predictions(baseline):
    repo, _, images = baseline
    expected = pd.read_csv(repo / "reports/eval/m1/predictions.csv")
    files = [str(images / path) for path in expected["path"]]
    result = predict(repo, *files, "--model", "m1", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(io.StringIO(result.stdout))
    assert got["path"].tolist() == files
    assert got["class_1"].tolist() == expected["predicted"].tolist()
    assert got["prob_1"].to_numpy() == pytest.approx(expected["confidence"].to_numpy(), abs=2e-5)
    assert (got["prob_1"] >= got["prob_2"]).all()


def test_predict_lists_odd_files_and_refuses_bad_input_in_one_line(baseline, tmp_path):
    repo, _, images = baseline
    folder = tmp_path / "mixed"
    shutil.copytree(images / "rose", folder / "rose")
    (folder / "notes.txt").write_text("not a picture")
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    (folder / ".thumbs").mkdir()
    (folder / ".thumbs/hidden.png").write_bytes(b"")
    out = tmp_path / "predicted.csv"
    result = predict(repo, str(folder), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(out)) == 8 and "hidden.png" not in out.read_text()
    assert f"skipped {folder / 'notes.txt'}: not an image file extension" in result.stderr
    assert f"skipped {folder / 'broken.png'}: not a readable image" in result.stderr
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/readme.md").write_text("")
    for args, line in (((str(tmp_path / "empty"),), "a folder with no image files (1 other files"),
                       ((str(tmp_path / "nowhere"),), "no such file or folder"),
                       ((), "predict: no input"),
                       ((str(folder), "--model", "m3"), "--model is 'm3', not a model params.yaml 'models:' lists"),
                       ((str(folder / "broken.png"),), "no usable image among the 1 files")):
        failed = predict(repo, *args)
        assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
        assert line in failed.stderr.strip().splitlines()[-1]


def test_predict_uses_the_exported_choice_and_refuses_images_of_another_shape(baseline):
    """--model best (the default) is the model the export stage chose; params.yaml's prepare no longer matching the
    model's input is one line naming both, before any image is read."""
    repo, _, images = baseline
    chosen = json.loads((repo / "reports/export/metrics.json").read_text())["model"]
    result = predict(repo, str(images / "rose"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"predict {chosen}: 8 images, 0 skipped"
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"]["image_size"] = 16
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        failed = predict(repo, str(images / "rose"), "--model", "m2")
    finally:
        git(repo, "checkout", "--", "params.yaml")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
    assert failed.stderr.strip().splitlines()[-1].endswith(
        "m2 takes (12, 12, 1) images but params.yaml prepare gives image_size 16; run dvc repro so the model matches "
        "params.yaml")


def test_a_clone_with_dvc_pull_has_every_output_and_reruns_nothing_without_the_dataset(baseline, tmp_path):
    repo, _, images = baseline
    store = tmp_path / "store"  # a local-directory DVC remote stands in for s3/gs/azure/ssh
    dvc(repo, "remote", "add", "--local", "store", str(store))
    dvc(repo, "push", "-r", "store")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    away = images.rename(tmp_path / "dataset-elsewhere")  # the source dataset is not on this machine
    try:
        dvc(clone, "remote", "add", "-d", "--local", "store", str(store))
        dvc(clone, "pull")
        for output in ("data/prepared/meta.json", "models/m1/model.keras", "models/m2/model.keras",
                       "export/model.onnx", "export/model_card.md", "reports/report.html"):
            assert (clone / output).is_file(), output
        assert stages_run(dvc(clone, "repro", "--allow-missing").stdout) == []
        assert set(json.loads(dvc(clone, "status", "--json").stdout)) == {"download"}  # only its dataset is away
    finally:
        away.rename(images)


def test_two_workers_share_a_sweep_through_git_and_dvc_remotes_and_one_collector_sees_all(baseline, tmp_path):
    repo, _, _ = baseline
    origin, store = tmp_path / "origin.git", tmp_path / "store"  # stand-ins for the shared Git and DVC remotes
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(origin))
    dvc(repo, "remote", "add", "-f", "--local", "store", str(store))
    dvc(repo, "push", "-r", "store")

    def machine(name: str) -> Path:
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", str(origin), str(clone))
        for cmd in (["config", "user.email", "t@example.com"], ["config", "user.name", name]):
            git(clone, *cmd)
        dvc(clone, "remote", "add", "-d", "--local", "store", str(store))
        return clone

    grid = {"worker1": [("0.002", "8")], "worker2": [("0.004", "4")]}  # a point each: DVC expands grids itself
    worker1 = machine("worker1")
    dvc(worker1, "pull")  # the baseline's outputs: each point re-runs only what its params change
    dvc(worker1, "exp", "run", "--queue", "-S", "train.m1.lr=0.002", "-S", "++train.m1.batch_size=8")
    dvc(worker1, "queue", "start", "-j", "1")
    deadline = time.time() + 400
    while time.time() < deadline:
        status = dvc(worker1, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(1)
    assert status.count("Success") == 1, status
    worker2 = machine("worker2")
    dvc(worker2, "pull")
    for lr, batch in grid["worker2"]:  # one point at a time works as well as the queue
        ran = dvc(worker2, "exp", "run", "-S", f"train.m1.lr={lr}", "-S", f"++train.m1.batch_size={batch}")
        assert "train@m1" in stages_run(ran.stdout) and "train@m2" not in stages_run(ran.stdout)
    for worker in (worker1, worker2):
        dvc(worker, "exp", "push", "origin")  # its experiments to Git, their outputs to the DVC remote

    collector = machine("collector")
    result = subprocess.run([sys.executable, "-m", "imageclf.cli.experiments", "--pull", "origin"], cwd=collector,
                            capture_output=True, text=True,
                            env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
                                 "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(collector)})
    assert result.returncode == 0, result.stdout + result.stderr
    frame = pd.read_csv(collector / "reports/experiments/experiments.csv", dtype=str, keep_default_na=False)
    m1 = frame[frame["model"] == "m1"]
    points = {(lr, batch) for lr, batch in zip(m1["train.m1.lr"], m1["train.m1.batch_size"], strict=True)}
    assert points == {("0.001", ""), *(p for ps in grid.values() for p in ps)}  # the baseline and all three
    assert [c for c in frame.columns if c.startswith("train.")] == ["train.m1.batch_size", "train.m1.lr"]
    for _, rows in frame.groupby("model"):  # the best experiment of each model is marked, ties said as such
        accuracy = rows["test_accuracy"].astype(float)
        top = accuracy == accuracy.max()
        assert (rows["best"] != "").tolist() == top.tolist()
        assert set(rows.loc[top, "best"]) == {"best" if top.sum() == 1 else "best (tie)"}
    assert set(frame.loc[frame["model"] == "m2", "best"]) == {"best (tie)"}  # no experiment changed m2
    page = (collector / "reports/experiments/experiments.html").read_text()
    assert page.count("<tr") == len(frame) + 1 and "data:image/png;base64," in page  # header + a row each


def test_editing_transfer_code_or_features_reruns_no_from_scratch_model(baseline):
    repo, _, _ = baseline
    lite0 = repo / "imageclf/models/efficientnet_lite.py"
    original = lite0.read_text()
    lite0.write_text(original + "\n# an edit\n")
    # export loads whichever model wins, transfer ones included; no from-scratch train or evaluate re-runs
    assert set(json.loads(dvc(repo, "status", "--json").stdout)) == {"features", "train_transfer@t1",
                                                                     "evaluate_transfer@t1", "export"}
    lite0.write_text(original)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["features"]["lite0"]["input_size"] = 48
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # (the audit reads features: too, for the set it uses)
    assert set(json.loads(dvc(repo, "status", "--json").stdout)) == {"features", "audit", "train_transfer@t1"}


def test_two_runs_from_scratch_are_identical(template, tmp_path):
    first, _, images = template
    second = scratch_repo(tmp_path, tiny_params(images))
    git(second, "add", "-A")
    git(second, "commit", "-qm", "pipeline")
    dvc(second, "repro", "evaluate@m1", "train@m2")  # the from-scratch models from the same data, nothing else
    repos = (first, second)
    for split in ("train", "val", "test"):
        a, b = ((r / f"data/split/{split}.csv").read_bytes() for r in repos)
        assert a == b
    for path, timing in (("reports/eval/m1/metrics.json", "inference"),
                         ("reports/train/m1/metrics.json", "train_time_s"),
                         ("reports/train/m2/metrics.json", "train_time_s")):
        a, b = (json.loads((r / path).read_text()) for r in repos)
        for run in (a, b):  # wall-clock figures differ by nature
            run.pop(timing)
            run.get("train", {}).pop("time_s", None)
        assert a == b


def test_changing_one_model_reruns_exactly_its_stages(baseline):
    """A from-scratch entry and the head of a frozen transfer entry change: each re-runs its own train and evaluate;
    the features stage (it reads train: to know which sets are used) recomputes nothing."""
    repo, _, _ = baseline

    def feature_outs() -> list:
        return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["features"]["outs"]

    before = feature_outs()
    exp = dvc(repo, "exp", "run", "-S", "train.m1.lr=0.01", "-S", "++train.t1.lr=0.01")
    assert stages_run(exp.stdout) == ["features", "train@m1", "train_transfer@t1", "evaluate@m1",
                                      "evaluate_transfer@t1", "compare", "export"]
    assert "features lite0: up to date" in exp.stdout and feature_outs() == before
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    baseline_row = next(row for row in shown if row["rev"] != "workspace")  # the commit the experiment is based on
    rows = [rev for exp in baseline_row["experiments"] or [] for rev in exp["revs"]]
    assert [row["data"]["params"]["params.yaml"]["data"]["train"]["m1"]["lr"] for row in rows] == [0.01]
    diff = json.loads(dvc(repo, "metrics", "diff", "--json").stdout)
    assert "eval.loss" in diff["reports/train/m1/metrics.json"]  # the retrained model's own log changed
    assert "reports/eval/m2/metrics.json" not in diff  # m2 did not change
    plots = dvc(repo, "plots", "diff", "HEAD", "--json").stdout
    for plot in ("reports/eval/m1/confusion.json", "reports/eval/m1/confusion_normalized.json",
                 "reports/train/m1/plots/metrics"):
        assert plot in plots


def test_seeded_runs_report_the_spread_over_two_seeds(baseline):
    repo, _, _ = baseline
    exp = dvc(repo, "exp", "run", "-S", "seeds.scratch=[m1]", "-S", "seeds.values=[1,2]")
    assert stages_run(exp.stdout) == ["seed@m1-1", "seed@m1-2", "compare"]  # the models themselves stay as they are
    runs = [json.loads((repo / f"reports/seeds/m1/seed-{s}/metrics.json").read_text())["test"] for s in (1, 2)]
    logs = [json.loads((repo / f"reports/seeds/m1/seed-{s}/train/metrics.json").read_text()) for s in (1, 2)]
    assert logs[0]["eval"]["loss"] != logs[1]["eval"]["loss"]  # the seed reached the training
    spread = pd.read_csv(repo / "reports/compare/seeds.csv")
    assert spread["model"].tolist() == ["m1"] and spread["seeds"].tolist() == [2]
    accuracies = pd.Series([r["accuracy"] for r in runs])
    assert spread["test_accuracy_mean"][0] == pytest.approx(accuracies.mean())
    assert spread["test_accuracy_std"][0] == pytest.approx(accuracies.std())
    assert json.loads((repo / "reports/compare/comparison.json").read_text())["m1"]["seeds"]["seeds"] == 2
    assert "## Training variance over seeds" in (repo / "reports/report.md").read_text()
    assert not (repo / "data/seed_runs").exists() or not any((repo / "data/seed_runs").iterdir())
