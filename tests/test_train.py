"""train stage on a tiny prepared cache: outputs, determinism, resume after kill -9, imbalance, multi-worker."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from conftest import ROOT, Project, base_params, module_project

from imageclf.cache import loader
from imageclf.cache.shards import load_split
from imageclf.train import fit
from imageclf.train.progress import BatchProgress


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory) -> Path:
    """A prepared 16 px cache of 3 classes, imbalanced 60/30/15, built once for this module."""
    project = module_project(tmp_path_factory, "tiny", {"a": 60, "b": 30, "c": 15})
    project.run("download", "split", "prepare")
    return project.path / "data/prepared"


def make_project(tmp_path: Path, cache: Path, **overrides) -> Path:
    work = tmp_path / "p"
    shutil.copytree(cache, work / "data/prepared")
    params = base_params()
    params["train_defaults"].update({"epochs": 4, "batch_size": 8, "patience": 3, **overrides})
    params["train"]["tiny"] = {"family": "lenet5", "filters": [4, 8], "dense": [16], "dropout": 0.2}
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    return work


def run_train(work: Path, env: dict | None = None, wait: bool = True) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "stages.train", "tiny"], cwd=work, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    if wait:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
        proc.output = out
    return proc


def train_here(work: Path) -> str:
    """The train stage in this process (TensorFlow is loaded already), for tests that need no process of its own (a
    kill, a second process to compare with); returns what it printed."""
    import contextlib
    import io

    project = Project(work)
    project.params = yaml.safe_load((work / "params.yaml").read_text())
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        project.run("train tiny")
    return printed.getvalue()


def weights(work: Path) -> list[np.ndarray]:
    return keras.models.load_model(work / "models/tiny/model.keras").get_weights()


def metrics(work: Path) -> dict:
    data = json.loads((work / "reports/train/tiny/metrics.json").read_text())
    data.pop("train_time_s")
    data["train"].pop("time_s")  # wall-clock figures differ by nature
    return data


def test_train_writes_model_logs_and_is_deterministic(tmp_path, tiny_cache):
    first = make_project(tmp_path / "one", tiny_cache)
    second = make_project(tmp_path / "two", tiny_cache)
    run_train(first)
    run_train(second)
    m = metrics(first)
    assert {"train", "eval", "best_epoch", "epochs_run", "params_total", "params_trainable",
            "params_non_trainable"} <= set(m)
    assert m["params_total"] == m["params_trainable"] > 0 and m["epochs_run"] == 4
    assert set(m["train"]) == {"loss", "accuracy", "learning_rate"} and set(m["eval"]) == {"loss", "accuracy"}
    loss_rows = (first / "reports/train/tiny/plots/metrics/eval/loss.tsv").read_text().splitlines()
    assert len(loss_rows) == 1 + 4
    seconds = [float(r.split("\t")[1]) for r in
               (first / "reports/train/tiny/plots/metrics/train/time_s.tsv").read_text().splitlines()[1:]]
    total = json.loads((first / "reports/train/tiny/metrics.json").read_text())["train_time_s"]
    assert len(seconds) == 4 and seconds == sorted(seconds) and seconds[-1] == pytest.approx(total, abs=0.02)
    assert "Total params" in (first / "reports/train/tiny/summary.txt").read_text()
    assert sorted(p.name for p in (first / "models/tiny/checkpoints").iterdir()) == ["best.keras"]
    log = train_here(make_project(tmp_path / "log", tiny_cache, epochs=1))
    assert f"train tiny: devices CPU ({os.cpu_count()} cores); _DefaultDistributionStrategy" in log \
        or "train tiny: devices /device:GPU:0" in log
    bar = re.search(r"train tiny epoch 1: 100%\|[^|]*\| (\d+)/(\d+) \[[^]]*batch/s\]", log)  # to the last batch
    assert bar and bar[1] == bar[2], log
    assert metrics(second) == m
    assert all(np.array_equal(a, b) for a, b in zip(weights(first), weights(second), strict=True))


def test_progress_bars_reach_the_last_batch_when_keras_reports_every_few(capsys):
    """With steps_per_execution 4 over 10 batches Keras reports batches 4, 8 and "12": each epoch's bar and the
    predict bar end at 10/10."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse", steps_per_execution=4)
    x, y = np.zeros((80, 3)), np.zeros((80, 2))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[BatchProgress("fit")])
    model.predict(x, batch_size=8, verbose=0, callbacks=[BatchProgress("predict")])
    shown = capsys.readouterr().err
    for name in ("fit epoch 1", "fit epoch 2", "predict"):
        assert re.search(name + r": 100%\|[^|]*\| 10/10 \[", shown), shown
    assert "11/10" not in shown and "12/10" not in shown


def test_an_epochs_bar_starts_below_the_keras_epoch_line(monkeypatch):
    """On one terminal (standard output and error together) Keras' "Epoch N/M" line starts a line of its own: the bar
    opens with the first batch, after it, not on top of it."""
    import contextlib
    import io

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    with contextlib.redirect_stdout(terminal):
        model.fit(np.zeros((16, 3)), np.zeros((16, 2)), batch_size=8, epochs=2, verbose=2,
                  callbacks=[BatchProgress("fit")])
    shown = terminal.getvalue()
    assert re.findall(r"(?:^|\n)(Epoch \d/2)", shown) == ["Epoch 1/2", "Epoch 2/2"], shown
    assert "fit epoch 2: 100%|" in shown


@pytest.mark.parametrize("monitor, best", [("val_loss", np.argmin), ("val_accuracy", np.argmax)])
def test_best_epoch_and_kept_weights_follow_the_monitor(tmp_path, tiny_cache, monitor, best):
    work = make_project(tmp_path, tiny_cache, epochs=6, patience=6, monitor=monitor)
    out = train_here(work)
    column = monitor.removeprefix("val_")
    curve = [float(r.split("\t")[1]) for r in
             (work / f"reports/train/tiny/plots/metrics/eval/{column}.tsv").read_text().splitlines()[1:]]
    m = metrics(work)
    assert m["best_epoch"] == best(curve) + 1 and m[f"best_{monitor}"] == pytest.approx(curve[best(curve)])
    assert f"best epoch {m['best_epoch']} of 6, val {column} {curve[best(curve)]:.4f}" in out
    best_epoch = keras.models.load_model(work / "models/tiny/checkpoints/best.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(weights(work), best_epoch, strict=True))


def killed_after(work: Path, epochs: int) -> int:
    """Start training in `work`, SIGKILL it once `epochs` epochs are checkpointed; the epochs it had finished."""
    proc = run_train(work, wait=False)
    state = work / "models/tiny/checkpoints/state.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text() or "{}").get("epoch", -1) >= epochs - 1:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return json.loads(state.read_text())["epoch"] + 1


# the weights' moving average (validated, kept, checkpointed swapped), one-hot mixed labels, erased patches
RECIPES = {"ema": 0.9, "mixup": 0.4, "random_erasing": 0.5, "label_smoothing": 0.1}


@pytest.mark.parametrize("recipe", [{}, RECIPES], ids=["augment", "recipes"])
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, tiny_cache, recipe):
    # min_steps 150 makes each epoch two passes over the 84 training images (11 steps a pass): a resume starts at
    # the right pass too, with the same augmented and oversampled batches
    entry = {"epochs": 8, "patience": 8, "min_steps": 150, "augment": 1, "oversample": True, **recipe}
    straight = make_project(tmp_path / "straight", tiny_cache, **entry)
    killed = make_project(tmp_path / "killed", tiny_cache, **entry)
    run_train(straight)
    assert json.loads((straight / "reports/train/tiny/metrics.json").read_text())["budget"]["passes_per_epoch"] == 2
    stopped_after = killed_after(killed, 3)
    assert stopped_after < 8
    resumed = run_train(killed)
    assert f"resuming after epoch {stopped_after}" in resumed.output
    assert all(np.array_equal(a, b) for a, b in zip(weights(straight), weights(killed), strict=True))
    assert metrics(killed) == metrics(straight)
    rows = (killed / "reports/train/tiny/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows[1:]] == [str(s) for s in range(8)]
    assert not (killed / "models/tiny/checkpoints/state.json").exists()


def test_ema_keeps_the_moving_average_of_the_weights(tmp_path, tiny_cache):
    """Keras' average starts at the weights after the first step (an Adam step moves each weight by lr); with momentum
    0.99999 it barely leaves them: runs at lr 0.001 and 0.01 keep models within 0.011 of each other, while the same
    lr 0.01 run without ema keeps a model far from the averaged one."""
    kept = {}
    for ema, lr in ((0.99999, 0.001), (0.99999, 0.01), (0, 0.01)):
        work = make_project(tmp_path / f"{ema}-{lr}", tiny_cache, ema=ema, lr=lr, epochs=2, patience=2)
        train_here(work)
        kept[ema, lr] = np.concatenate([w.ravel() for w in weights(work)])
    assert np.abs(kept[0.99999, 0.001] - kept[0.99999, 0.01]).max() < 0.011
    assert np.abs(kept[0, 0.01] - kept[0.99999, 0.01]).max() > 0.05


def test_mixup_and_cutmix_together_are_one_line(tmp_path, tiny_cache):
    work = make_project(tmp_path, tiny_cache, mixup=0.2)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"]["tiny"]["cutmix"] = 1.0
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, "-m", "stages.train", "tiny"], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "params.yaml: 'train.tiny' has mixup 0.2 and cutmix 1.0: they are alternatives, set one of them to 0" \
        in proc.stderr


def test_changed_params_do_not_resume_a_stale_checkpoint(tmp_path, tiny_cache):
    """A real partial run at lr 0.001, then lr 0.01: the new run starts afresh and ends exactly like a run that only
    ever saw lr 0.01."""
    changed = make_project(tmp_path / "changed", tiny_cache, epochs=6, patience=6)
    assert killed_after(changed, 2) < 6
    params = yaml.safe_load((changed / "params.yaml").read_text())
    params["train_defaults"]["lr"] = 0.01
    (changed / "params.yaml").write_text(yaml.safe_dump(params))
    out = run_train(changed).output
    assert "resuming" not in out
    fresh = make_project(tmp_path / "fresh", tiny_cache, epochs=6, patience=6, lr=0.01)
    run_train(fresh)
    assert metrics(changed) == metrics(fresh)
    assert all(np.array_equal(a, b) for a, b in zip(weights(changed), weights(fresh), strict=True))


def test_oversampling_balances_classes(tiny_cache):
    labels = load_split(tiny_cache, "train")[1]
    assert np.bincount(labels).tolist()[0] > 3 * np.bincount(labels).tolist()[2]  # imbalanced fixture
    ds = loader.dataset(tiny_cache, "train", 32, shuffle=True, oversample=True, seed=1, epochs=(0, 4))
    steps = 4 * -(-len(labels) // 32)
    drawn = np.concatenate([y.numpy() for _, y in ds.take(steps)])
    share = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.all(np.abs(share - 1 / 3) < 0.08), share


def recipe_batches(cache: Path, **recipe) -> tuple[np.ndarray, np.ndarray]:
    """The first training batch of 32 (images, one-hot labels) with a recipe, the same order as without."""
    images, labels = next(iter(loader.dataset(cache, "train", 32, shuffle=True, seed=3, epochs=(0, 1), one_hot=True,
                                              **recipe)))
    return images.numpy(), labels.numpy()


def test_mixup_blends_two_images_and_their_labels_by_the_same_weight(tiny_cache):
    plain, onehot = recipe_batches(tiny_cache)
    mixed, soft = recipe_batches(tiny_cache, mixup=0.4)
    assert np.allclose(soft.sum(axis=1), 1) and ((soft > 0.01) & (soft < 0.99)).any()
    blended = 0
    for i in range(len(plain)):
        # mixed[i] = w * plain[i] + (1 - w) * plain[j] for one j, and soft[i] = w * onehot[i] + (1 - w) * onehot[j]
        fits = []
        for j in range(len(plain)):
            d = (plain[i] - plain[j]).ravel()
            w = 1.0 if not d.any() else float(np.dot((mixed[i] - plain[j]).ravel(), d) / np.dot(d, d))
            if np.allclose(mixed[i], w * plain[i] + (1 - w) * plain[j], atol=1e-4) and \
                    np.allclose(soft[i], w * onehot[i] + (1 - w) * onehot[j], atol=1e-4):
                fits.append(w)
        assert fits, f"image {i} is not a blend of two images with its label's weights"
        blended += min(fits) < 0.99
    assert blended > len(plain) // 2


def test_cutmix_pastes_a_patch_and_labels_by_its_area(tiny_cache):
    plain, onehot = recipe_batches(tiny_cache)
    mixed, soft = recipe_batches(tiny_cache, cutmix=1.0)
    pasted = 0
    for i in range(len(plain)):
        changed = ~np.isclose(mixed[i], plain[i]).all(axis=-1)
        if not changed.any():
            continue
        pasted += 1
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        # the changed pixels lie in one rectangle, all from one other image j of the batch
        donors = [j for j in range(len(plain)) if np.allclose(mixed[i][changed], plain[j][changed])]
        assert donors and changed.sum() <= len(rows) * len(cols)
        # the label gives the donor the patch's share of the image: at least the changed box (the patch's border
        # pixels can be equal in both images), less the rounding of the box to whole pixels (a 16 px row is 6%)
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1) / changed.size
        w = 1 - soft[i] @ onehot[i]  # the weight moved off the image's own class
        assert any(np.allclose(soft[i], (1 - w) * onehot[i] + w * onehot[j], atol=1e-4) and
                   (w >= box - 0.03 or np.array_equal(onehot[i], onehot[j])) for j in donors)
    assert pasted > len(plain) // 2


@pytest.mark.parametrize("probability", [0.0, 0.5, 1.0])
def test_random_erasing_changes_one_patch_of_that_share_of_images(tiny_cache, probability):
    plain, onehot = recipe_batches(tiny_cache)
    erased, labels = recipe_batches(tiny_cache, erase=probability)
    assert np.array_equal(labels, onehot)
    changed = [~np.isclose(e, p).all(axis=-1) for e, p in zip(erased, plain, strict=True)]
    share = np.mean([c.any() for c in changed])
    assert share == probability if probability in (0.0, 1.0) else 0.25 < share < 0.75
    for c in changed:
        if c.any():  # one rectangle: its bounding box is no larger than twice the changed pixels (noise can match)
            rows, cols = np.flatnonzero(c.any(axis=1)), np.flatnonzero(c.any(axis=0))
            assert c.sum() >= 0.5 * (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)


def test_the_retrain_on_train_val_keeps_the_entry_settings_and_is_the_saved_model(tmp_path, tiny_cache, monkeypatch):
    """class weights and oversampling apply to the retrain on train+val exactly as to the first fit, the retrain
    runs retrain_full_epochs, and the model saved is the retrained one (not the best epoch of the first fit)."""
    from imageclf.train import config

    work = make_project(tmp_path, tiny_cache, epochs=2, class_weight="balanced", oversample=True,
                        retrain_full_epochs=1)
    monkeypatch.chdir(work)
    cfg = config.model_config(yaml.safe_load((work / "params.yaml").read_text()), "tiny")
    fits, after, datasets = [], [], []
    real_fit, real_dataset = keras.Model.fit, loader.dataset

    def spy_fit(self, *a, **kw):
        fits.append(kw)
        history = real_fit(self, *a, **kw)
        after.append(self.get_weights())
        return history

    monkeypatch.setattr(keras.Model, "fit", spy_fit)
    monkeypatch.setattr(loader, "dataset", lambda *a, **kw: datasets.append((a[1], kw)) or real_dataset(*a, **kw))
    summary = fit.train(cfg, work / "data/prepared", work / "models/tiny", work / "reports/train/tiny")
    labels = {s: load_split(work / "data/prepared", s)[1] for s in ("train", "val")}
    assert len(fits) == 2 and fits[0]["class_weight"] == fit.class_weights(labels["train"], 3)
    assert fits[1]["class_weight"] == fit.class_weights(np.concatenate(list(labels.values())), 3)
    assert fits[1]["epochs"] - fits[1].get("initial_epoch", 0) == 1
    trained = [(split, kw) for split, kw in datasets if kw.get("epochs")]
    assert [split for split, _ in trained] == [("train",), ("train", "val")]
    assert all(kw["oversample"] and kw["shuffle"] for _, kw in trained)
    saved = keras.models.load_model(work / "models/tiny/model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, after[1], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(saved, after[0], strict=True))
    assert summary["retrained_on_train_val"] is True
    assert json.loads((work / "models/tiny/classes.json").read_text())["trained_on"] == ["train", "val"]


def test_multi_worker_config_is_refused_with_a_clear_line(tmp_path, tiny_cache):
    work = make_project(tmp_path, tiny_cache)
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    proc = run_train(work, env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})},
                     wait=False)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 2
    line = out.strip().splitlines()[-1]
    assert line.startswith("error: TF_CONFIG is set, but Keras 3 cannot fit() under") and "keras#20585" in line
    assert "MirroredStrategy), or spread a sweep over machines" in line  # what a user can do instead


@pytest.mark.parametrize("gpu", [False, True])
def test_accelerator_settings_follow_the_params(gpu):
    """The rule, whatever machine runs the test: auto follows the GPU, on and off are what they say."""
    assert fit.accelerator_settings({"mixed_precision": "auto", "xla": "auto"}, gpu) == (gpu, gpu)
    assert fit.accelerator_settings({"mixed_precision": "on", "xla": "off"}, gpu) == (True, False)
    assert fit.accelerator_settings({"mixed_precision": "off", "xla": "on"}, gpu) == (False, True)


def test_imbalance_handling_on_elpv(tmp_path, monkeypatch):
    """elpv is imbalanced (1508/295/106/715): balanced class weights and oversampling on a real subset."""
    from conftest import Project

    from imageclf.data import sources

    real = sources.SOURCES["elpv"]
    monkeypatch.setitem(sources.SOURCES, "elpv",
                        lambda data: sources.Collection(real(data).items[::8], [], {}, real(data).class_order))
    work = tmp_path / "elpv"
    work.mkdir()
    project = Project(work)
    project.params["data"].update(source="elpv", path=".")
    project.params["prepare"].update(image_size=16, color="grayscale")
    project.run("download", "split", "prepare")
    labels = load_split(work / "data/prepared", "train")[1]
    counts = np.bincount(labels, minlength=4)
    assert counts.max() > 5 * counts.min() > 0
    weights = fit.class_weights(labels, 4)
    for k in range(4):
        assert weights[k] == pytest.approx(len(labels) / (4 * counts[k]))
    ds = loader.dataset(work / "data/prepared", "train", 32, shuffle=True, oversample=True, seed=0, epochs=(0, 3))
    drawn = np.concatenate([y.numpy() for _, y in ds.take(3 * -(-len(labels) // 32))])
    assert np.all(np.abs(np.bincount(drawn, minlength=4) / len(drawn) - 0.25) < 0.06)
