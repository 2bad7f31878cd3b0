"""evaluate and compare: metric values checked by hand, bad inputs, and the report renders every section."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, Project, make_folder_tree, module_project

from imageclf.core.errors import UserError
from imageclf.evaluate import metrics


def test_split_metrics_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1],
                      [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    m = metrics.split_metrics(y, probs, top_k=2, ece_bins=10)
    # predictions 0,1,1,1,2,0 -> 4 of 6 right
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.8, 0.4, 0.7, 0.8, 0.7, 0.1])))
    # top-2: sample 2 (true 0: 0.4 is 2nd) ok, sample 6 (true 2: 0.1 is 3rd) missed -> 5 of 6
    assert m["top2_accuracy"] == pytest.approx(5 / 6)
    # per class: class 0 P=1/2 R=1/2; class 1 P=2/3 R=1; class 2 P=1 R=1/2
    p = [1 / 2, 2 / 3, 1.0]
    r = [1 / 2, 1.0, 1 / 2]
    f = [2 * a * b / (a + b) for a, b in zip(p, r, strict=True)]
    assert m["macro_precision"] == pytest.approx(np.mean(p)) and m["macro_recall"] == pytest.approx(np.mean(r))
    assert m["balanced_accuracy"] == pytest.approx(np.mean(r))  # mean recall over the classes
    assert m["macro_f1"] == pytest.approx(np.mean(f)) and m["weighted_f1"] == pytest.approx(np.mean(f))
    # kappa: po = 4/6, pe = sum(true share * predicted share) = (2*2 + 2*3 + 2*1) / 36
    assert m["cohen_kappa"] == pytest.approx((4 / 6 - 12 / 36) / (1 - 12 / 36))
    # ECE with 10 bins: confidences .8 .5 .7 .8 .7 .6, correct 1 0 1 1 1 0
    bins = {0.8: ([1, 1], [0.8, 0.8]), 0.5: ([0], [0.5]), 0.7: ([1, 1], [0.7, 0.7]), 0.6: ([0], [0.6])}
    ece = sum(len(c) / 6 * abs(np.mean(c) - np.mean(conf)) for c, conf in bins.values())
    assert m["ece"] == pytest.approx(ece)
    assert m["samples"] == 6


def test_zero_support_class_is_reported_not_a_crash():
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    report = metrics.per_class(y, pred, ["a", "b", "c"])
    c = report[report["class"] == "c"].iloc[0]
    assert c["support"] == 0 and c["f1"] == 0 and c["note"] == "no samples of this class in the split"
    probs = np.eye(3)[pred] * 0.9 + 0.05
    m = metrics.split_metrics(y, probs, top_k=2, ece_bins=5)
    assert m["accuracy"] == 0.75 and m["macro_f1"] == pytest.approx(np.mean([2 / 3, 0.8]))
    assert m["balanced_accuracy"] == pytest.approx(0.75)  # recall 1/2 and 1 over the two classes present
    skewed = metrics.split_metrics(np.array([0, 0, 0, 1]), np.eye(3)[[0, 0, 0, 2]] * 0.9 + 0.05, 2, 5)
    assert skewed["accuracy"] == 0.75 and skewed["balanced_accuracy"] == 0.5  # class 1 never found
    single = metrics.split_metrics(np.array([1, 1]), np.eye(3)[[1, 1]] * 0.9 + 0.05, top_k=2, ece_bins=5)
    assert single["cohen_kappa"] is None  # undefined with one class, written as null


@pytest.mark.parametrize(("sharpness", "direction"), [(3.0, "above"), (1 / 3, "below")])
def test_temperature_scaling_undoes_over_and_under_confidence(sharpness, direction):
    """Probabilities made 3x too sharp (or too flat) are fitted on one half: T lands above (below) 1, and the other
    half's ECE halves and its NLL drops."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 4000)
    logits = rng.normal(size=(4000, 3))
    logits[np.arange(4000), y] += 1.5
    honest = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    skewed = metrics.with_temperature(honest, 1 / sharpness)
    t = metrics.fit_temperature(y[:2000], skewed[:2000])
    assert (t > 1) if direction == "above" else (t < 1)
    before, after = skewed[2000:], metrics.with_temperature(skewed[2000:], t)
    scores = [metrics.split_metrics(y[2000:], probs, 2, 15) for probs in (before, after)]
    assert scores[1]["ece"] < 0.5 * scores[0]["ece"] and scores[1]["loss"] < scores[0]["loss"]
    assert np.array_equal(after.argmax(axis=1), before.argmax(axis=1))  # scaling never changes a prediction


def test_confused_pairs_threshold_and_order():
    y = np.array([0] * 10 + [1] * 10 + [2] * 10)
    pred = np.array([1] * 7 + [0] * 3 + [2] * 6 + [1] * 4 + [2] * 10)
    pairs = metrics.confused_pairs(y, pred, ["a", "b", "c"], min_errors=5)
    assert pairs.to_dict("records") == [
        {"true": "a", "predicted": "b", "errors": 7, "percent_of_samples": pytest.approx(700 / 30)},
        {"true": "b", "predicted": "c", "errors": 6, "percent_of_samples": pytest.approx(20.0)},
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """download -> split -> prepare -> train two tiny models -> evaluate -> compare, in-process."""
    project = module_project(tmp_path_factory, "eval", {"cat": 14, "dog": 14, "eel": 14})
    project.params["split"]["fractions"] = {"train": 0.5, "val": 0.25, "test": 0.25}
    project.params["train_defaults"].update(epochs=3, batch_size=8)
    project.params["models"] = {"scratch": ["tiny_lenet", "tiny_mlp"], "transfer": []}
    project.params["train"] = {"tiny_lenet": {"family": "lenet5", "filters": [4, 8], "dense": [8]},
                               "tiny_mlp": {"family": "mlp", "dense": [16]}}
    project.params["evaluate"].update(min_errors=0, batch_size=8)
    project.run("download", "split", "prepare", *(f"{stage} {name}" for name in project.params["models"]["scratch"]
                                                  for stage in ("train", "evaluate")), "compare")
    return project


def test_evaluate_outputs_match_the_predictions(trained):
    out = trained.path / "reports/eval/tiny_lenet"
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) == {"trained_on", "train", "val", "test", "inference"} and m["inference"]["images_per_s"] > 0
    assert m["trained_on"] == "train"
    assert m["test"]["accuracy_ci95_low"] <= m["test"]["accuracy"] <= m["test"]["accuracy_ci95_high"]
    assert "accuracy_ci95_low" not in m["val"]  # intervals on evaluate.split only
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == m["test"]["samples"] == 12
    assert m["test"]["accuracy"] == pytest.approx((predictions["true"] == predictions["predicted"]).mean())
    prob_cols = [c for c in predictions if c.startswith("prob_")]
    assert prob_cols == ["prob_cat", "prob_dog", "prob_eel"]
    assert np.allclose(predictions[prob_cols].sum(axis=1), 1, atol=1e-3)
    rows = json.loads((out / "confusion.json").read_text())
    assert rows == [{"actual": t, "predicted": p} for t, p in zip(predictions["true"], predictions["predicted"],
                                                                   strict=True)]
    per_class = pd.read_csv(out / "per_class.csv")
    assert per_class["support"].tolist() == [4, 4, 4]
    pairs = pd.read_csv(out / "confused_pairs.csv")
    wrong = predictions[predictions["true"] != predictions["predicted"]]
    assert pairs["errors"].sum() == len(wrong)


def test_the_gallery_shows_the_confused_images_beside_real_ones(tmp_path, monkeypatch):
    """Image i is filled with the value i, so each tile says which image it is."""
    from imageclf.evaluate import plots

    y = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    pred = np.array([1, 0, 1, 1, 2, 1, 2, 1])
    images = np.arange(8, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 1), np.uint8)
    shown = []
    monkeypatch.setattr(plots, "_show", lambda ax, img, title, color: shown.append((int(img.max()), color)))
    pairs = pd.DataFrame({"true": ["a", "c"], "predicted": ["b", "b"]})
    plots.gallery(pairs, images, y, pred, ["a", "b", "c"], 4, tmp_path / "gallery.png")
    # a shown as b: images 0 and 2; real bs (true b, predicted b): 3 and 5; c shown as b: 7
    assert shown == [(0, "tab:red"), (2, "tab:red"), (3, "tab:green"), (5, "tab:green"), (7, "tab:red"),
                     (3, "tab:green"), (5, "tab:green")]


def test_the_figures_show_the_images_and_heat_maps_they_name(trained, tmp_path, monkeypatch):
    """What is drawn, not the file size: the gallery's left tiles are the test images of the confused pair (true A
    predicted B), its right tiles real Bs; the Grad-CAM rows are those images with a heat map of their own size in
    [0, 1]; the confusion figure gets the predictions; the MLP's panel is a note."""
    from PIL import Image

    from imageclf.cache.shards import load_split
    from imageclf.evaluate import plots, scoring

    shown, heat_rows, confusion = [], [], []
    real_show, real_heatmaps, real_confusion = plots._show, plots.heatmaps, plots.confusion_heatmap
    monkeypatch.setattr(plots, "_show", lambda ax, img, title, color: shown.append((img, title, color)) or
                        real_show(ax, img, title, color))
    monkeypatch.setattr(plots, "heatmaps", lambda rows, *a: heat_rows.extend(rows) or real_heatmaps(rows, *a))
    monkeypatch.setattr(plots, "confusion_heatmap", lambda y, pred, *a: confusion.append((y, pred)) or
                        real_confusion(y, pred, *a))
    params = yaml.safe_load((trained.path / "params.yaml").read_text())
    out = tmp_path / "tiny_lenet"
    scoring.evaluate("tiny_lenet", trained.path / "models/tiny_lenet", trained.path / "data/prepared", out, params)
    images, y = load_split(trained.path / "data/prepared", "test")
    predictions = pd.read_csv(out / "predictions.csv")
    classes = ["cat", "dog", "eel"]
    pred = predictions["predicted"].map(classes.index).to_numpy()
    assert [(a.tolist(), b.tolist()) for a, b in confusion] == [(y.tolist(), pred.tolist())]
    pairs = pd.read_csv(out / "confused_pairs.csv")
    assert len(pairs), "the fixture's tiny model makes mistakes for the gallery to show"
    gallery = shown[:len(shown) - sum(len(imgs) for imgs, _, _ in heat_rows)]
    expected = []
    for true, predicted in zip(pairs["true"], pairs["predicted"], strict=True):
        t, p = classes.index(true), classes.index(predicted)
        expected += [(i, "tab:red") for i in np.flatnonzero((y == t) & (pred == p))[:4]]
        expected += [(i, "tab:green") for i in np.flatnonzero((y == p) & (pred == p))[:4]]
    assert len(gallery) == len(expected)
    for (img, _, color), (i, want) in zip(gallery, expected, strict=True):
        assert color == want and np.array_equal(img, images[i])
    assert heat_rows
    for imgs, heat, titles in heat_rows:
        assert heat.shape == imgs.shape[:3] and heat.min() >= 0 and heat.max() <= 1 and heat.std() > 0
        for img, title in zip(imgs, titles, strict=True):
            i = next(k for k in range(len(images)) if np.array_equal(images[k], img))
            assert title.startswith(classes[y[i]]) or title == f"a real {classes[y[i]]}"
    for png in ("confusion.png", "gallery.png", "gradcam.png", "reliability.png"):
        picture = np.asarray(Image.open(out / png).convert("L"))
        assert picture.std() > 10, png  # drawn, not a blank canvas
    mlp = Image.open(trained.path / "reports/eval/tiny_mlp/gradcam.png")
    assert mlp.size == (600, 60)  # one line: Grad-CAM does not apply


def test_report_renders_every_section_with_the_runs_data(trained):
    reports = trained.path / "reports"
    table = pd.read_csv(reports / "compare/comparison.csv")
    assert table["model"].tolist() == ["tiny_lenet", "tiny_mlp"]
    assert table["test_accuracy"].notna().all() and table["params_total"].gt(0).all()
    report = (reports / "report.md").read_text()
    for section in ("# Model comparison", "## Dataset", "## tiny_lenet", "## tiny_mlp", "compare/curves.png",
                    "compare/scores.png", "compare/time_to_accuracy.png", "eval/tiny_lenet/confusion.png",
                    "eval/tiny_mlp/gallery.png", "eval/tiny_lenet/gradcam.png", "## Are the differences real?"):
        assert section in report
    for _, row in table.iterrows():  # the score table's row of each model holds that model's figures
        line = next(r for r in report.splitlines()  # (the full table, folded below the compact one)
                    if r.startswith(f"| {row['model']} |") and r.count("|") == len(table.columns) + 1)
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[table.columns.get_loc("test_accuracy")] == f"{row['test_accuracy']:.4f}"
        assert cells[table.columns.get_loc("params_total")] == str(row["params_total"])
    counts = json.loads((reports / "data/class_counts.json").read_text())
    for name in ("cat", "dog", "eel"):  # the dataset table is the split's class counts
        assert f"| {name} | {counts['train'][name]} | {counts['val'][name]} | {counts['test'][name]} |" in report
    pairs = pd.read_csv(reports / "compare/significance.csv")
    assert pairs[["model_a", "model_b"]].values.tolist() == [["tiny_lenet", "tiny_mlp"]]
    for name in ("tiny_lenet", "tiny_mlp"):  # the temperature fitted on val and what it did on test
        scores = json.loads((reports / f"eval/{name}/metrics.json").read_text())["test"]
        fitted = scores["calibrated"]
        assert fitted["val_images"] == counts["val"]["total"]
        assert (f"Calibration: temperature {fitted['temperature']:.2f} fitted on {fitted['val_images']} val images; "
                f"on test NLL {scores['loss']:.3f} -> {fitted['loss']:.3f}, ECE {scores['ece']:.3f} -> "
                f"{fitted['ece']:.3f}.") in report
    verdict = pairs["verdict"].iloc[0]
    assert verdict in report.splitlines() and f"(p = {pairs['p_holm'].iloc[0]:.3f})" in verdict
    low, high = (table.loc[0, "test_accuracy_ci95"].strip("[]").split(", "))
    assert float(low) <= table.loc[0, "test_accuracy"] <= float(high)
    assert "seconds_to_val_0.9" in table.columns
    page = (reports / "report.html").read_text()
    embedded = [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    figures = [reports / f for f in re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", report)]
    assert len(figures) == 3 + 2 * 4  # curves, time, scores; confusion, gallery, Grad-CAM, reliability of each model
    assert embedded == [f.read_bytes() for f in figures]  # each picture inline, in the Markdown page's order
    assert "<table" in page and "tiny_mlp" in page and "src=\"reports/" not in page


# Measures the page once it has loaded (images included) and leaves the figures on <body data-probe="...">, which
# Chromium's --dump-dom prints
PROBE = """<script>addEventListener('load', () => {
  const shown = el => el.offsetParent !== null && !el.closest('details:not([open])');
  document.body.dataset.probe = JSON.stringify({
    width: innerWidth, scroll: document.documentElement.scrollWidth,
    images: [...document.images].map(i => ({alt: i.alt, loaded: i.complete && i.naturalWidth > 0,
                                             right: i.getBoundingClientRect().right})),
    tables: [...document.querySelectorAll('table')].filter(shown).map(t => [t.scrollWidth, t.clientWidth]),
    folded: [...document.querySelectorAll('details:not([open]) table')].length,
    first: document.querySelector('p').textContent});
});</script>"""


def rendered(page: Path, width: int, tmp_path: Path) -> dict:
    """What headless Chromium lays out for `page` in a window `width` px wide (PROBE's figures)."""
    browser = shutil.which("chromium-headless-shell")
    if browser is None:
        pytest.fail("chromium-headless-shell is not installed; `make test` installs it (Debian package "
                    "chromium-headless-shell)")
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    done = subprocess.run([browser, "--no-sandbox", f"--window-size={width},900", "--virtual-time-budget=10000",
                           "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert found, f"no measurement in Chromium's output: {done.stderr[-2000:]}"
    return json.loads(html.unescape(found[1]))


def test_the_report_fits_a_laptop_screen_in_a_real_browser(trained, tmp_path):
    """report.html at 1280 px in headless Chromium: no horizontal scrolling, every picture loaded and inside the
    window, every table that shows fits without scrolling (the full score table is folded), and the page opens with
    the chosen model's headline."""
    reports = trained.path / "reports"
    shown = rendered(reports / "report.html", 1280, tmp_path)
    assert shown["width"] == 1280 and shown["scroll"] <= 1280, shown["scroll"]
    assert len(shown["images"]) == 3 + 2 * 4  # curves, time, scores; confusion, gallery, Grad-CAM, reliability each
    assert all(i["loaded"] and i["right"] <= 1280 for i in shown["images"]), shown["images"]
    assert shown["tables"] and all(scroll <= client + 1 for scroll, client in shown["tables"]), shown["tables"]
    assert shown["folded"] == 1
    table = pd.read_csv(reports / "compare/comparison.csv")
    chosen = table.loc[table["val_accuracy"].idxmax()]  # export.model best by val.accuracy (ties: the first listed)
    assert shown["first"].startswith(f"Chosen model: {chosen['model']} (the best val.accuracy, as export chooses). "
                                     f"On test: accuracy {chosen['test_accuracy']:.2%}")


@pytest.mark.parametrize("calibrated", [False, True])
def test_the_export_carries_the_temperature_only_when_asked(trained, tmp_path, calibrated):
    """export.calibrated: the ONNX file gives softmax(log p / T) with evaluate's temperature (the same top-1 class),
    or the probabilities as trained; the card says which. Asked for a model without a temperature: one line."""
    import onnxruntime

    from imageclf.cache.shards import load_split
    from imageclf.evaluate.metrics import with_temperature

    project = Project(tmp_path / "p")
    for part in ("data/prepared", "models/tiny_lenet", "reports/eval/tiny_lenet"):
        shutil.copytree(trained.path / part, project.path / part)
    project.params = yaml.safe_load((trained.path / "params.yaml").read_text())
    project.params["models"]["scratch"] = ["tiny_lenet"]
    project.params["export"].update(model="tiny_lenet", formats=["onnx"], calibrated=calibrated, latency_runs=2)
    project.run("export")
    pixels = np.asarray(load_split(project.path / "data/prepared", "test")[0])
    session = onnxruntime.InferenceSession(str(project.path / "export/model.onnx"))
    exported = session.run(None, {session.get_inputs()[0].name: pixels})[0]
    trained_probs = keras.models.load_model(project.path / "models/tiny_lenet/model.keras").predict(
        pixels.astype(np.float32) / 255, verbose=0)
    scores = json.loads((project.path / "reports/eval/tiny_lenet/metrics.json").read_text())
    t = scores["test"]["calibrated"]["temperature"]
    assert abs(np.log(t)) > 0.05  # the fixture's temperature changes the probabilities visibly
    expected = with_temperature(trained_probs, t) if calibrated else trained_probs
    assert np.allclose(exported, expected, atol=1e-4) and not np.allclose(exported, with_temperature(
        trained_probs, 1 / t if calibrated else t), atol=1e-3)
    assert np.array_equal(exported.argmax(axis=1), trained_probs.argmax(axis=1))
    card = (project.path / "export/model_card.md").read_text()
    said = ("temperature-scaled probabilities (export.calibrated: true): softmax(log p / " if calibrated
            else "export.calibrated: true puts it into the exported files")
    assert said in card
    if calibrated:
        del scores["test"]["calibrated"]
        (project.path / "reports/eval/tiny_lenet/metrics.json").write_text(json.dumps(scores))
        with pytest.raises(UserError, match=r"^export.calibrated is true, but tiny_lenet has no temperature in "
                                            r"reports/eval/tiny_lenet/metrics.json \(evaluate.calibrate false"):
            project.run("export")


def test_class_list_mismatch_and_missing_model(trained, tmp_path):
    from imageclf.evaluate import scoring

    model_dir = tmp_path / "m"
    shutil.copytree(trained.path / "models/tiny_mlp", model_dir)
    (model_dir / "classes.json").write_text(json.dumps({"classes": ["cat", "dog", "fox"]}))
    with pytest.raises(UserError, match=r"trained on other classes than the data has \(missing \['eel'\], "
                                        r"extra \['fox'\]\)"):
        scoring.load_model("tiny_mlp", model_dir, ["cat", "dog", "eel"])
    with pytest.raises(UserError, match=r"ghost/model.keras not found; train the model first \(dvc repro\)"):
        scoring.load_model("ghost", tmp_path / "ghost", ["cat"])
    (model_dir / "classes.json").unlink()
    with pytest.raises(UserError, match=r"m/classes.json not found; train the model first \(dvc repro\)"):
        scoring.load_model("tiny_mlp", model_dir, ["cat", "dog", "eel"])


def test_a_model_retrained_on_val_is_not_scored_on_val(trained, tmp_path, monkeypatch):
    """retrain_full_epochs: the final model saw the val images, so val metrics are left out and the table says so."""
    from imageclf.evaluate import scoring
    from imageclf.report import comparison

    root = tmp_path / "reports"
    shutil.copytree(trained.path / "reports", root)
    model_dir = tmp_path / "models/tiny_mlp"
    shutil.copytree(trained.path / "models/tiny_mlp", model_dir)
    info = json.loads((model_dir / "classes.json").read_text())
    (model_dir / "classes.json").write_text(json.dumps({**info, "trained_on": ["train", "val"]}))
    params = yaml.safe_load((trained.path / "params.yaml").read_text())
    m = scoring.evaluate("tiny_mlp", model_dir, trained.path / "data/prepared", root / "eval/tiny_mlp", params)
    assert set(m) == {"trained_on", "train", "test", "inference"} and m["trained_on"] == "train+val"
    assert "calibrated" not in m["test"]  # no held-out val to fit a temperature on
    frame = comparison.write(["tiny_lenet", "tiny_mlp"], root, "test").set_index("model")
    assert pd.isna(frame.loc["tiny_mlp", "val_accuracy"]) and pd.notna(frame.loc["tiny_lenet", "val_accuracy"])
    assert frame.loc["tiny_mlp", "trained_on"] == "train+val"
    assert "Retrained on train+val (retrain_full_epochs): tiny_mlp." in (root / "report.md").read_text()
    params["evaluate"]["split"] = "val"
    with pytest.raises(UserError, match=r"evaluate.split is 'val' but tiny_mlp was retrained on train\+val"):
        scoring.evaluate("tiny_mlp", model_dir, trained.path / "data/prepared", root / "eval/tiny_mlp", params)


def test_the_score_chart_shows_accuracy_and_macro_f1_of_the_same_split(trained, tmp_path, monkeypatch):
    from imageclf.evaluate import scoring
    from imageclf.report import comparison, plots

    root = tmp_path / "reports"
    shutil.copytree(trained.path / "reports", root)
    params = yaml.safe_load((trained.path / "params.yaml").read_text())
    params["evaluate"]["split"] = "val"
    for name in ("tiny_lenet", "tiny_mlp"):
        scoring.evaluate(name, trained.path / "models" / name, trained.path / "data/prepared", root / "eval" / name,
                            params)
    drawn = []
    monkeypatch.setattr(plots, "score_bars",
                        lambda frame, acc, f1, out, spread: drawn.append((acc, f1, frame[f1].tolist())))
    frame = comparison.write(["tiny_lenet", "tiny_mlp"], root, "val")
    assert drawn == [("val_accuracy", "val_macro_f1", frame["val_macro_f1"].tolist())]
    scored = [json.loads((root / "eval" / n / "metrics.json").read_text())["val"]["macro_f1"] for n in frame["model"]]
    assert frame["val_macro_f1"].tolist() == scored


def test_empty_detail_split_is_a_clear_error(trained, tmp_path):
    params = yaml.safe_load((trained.path / "params.yaml").read_text())
    params["evaluate"]["split"] = "test"
    meta = json.loads((trained.path / "data/prepared/meta.json").read_text())
    work = tmp_path / "w"
    shutil.copytree(trained.path / "data/prepared", work / "data/prepared")
    shutil.copytree(trained.path / "models", work / "models")
    meta["splits"]["test"] = {"count": 0, "shards": []}
    (work / "data/prepared/meta.json").write_text(json.dumps(meta))
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "stages.evaluate", "tiny_mlp"], cwd=work, capture_output=True,
                            text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == ("error: evaluate.split is 'test' but that split is empty; set "
                                                      "evaluate.split to a split with images (train, val)")


def test_domain_shift_maps_classes_and_counts_the_dropped(trained, tmp_path, monkeypatch):
    from imageclf.cache.settings import from_shape, image_size
    from imageclf.data import images
    from imageclf.evaluate import scoring

    other = make_folder_tree(tmp_path / "other", {"kitty": 6, "doggo": 6, "bird": 4})
    monkeypatch.chdir(trained.path)
    params = yaml.safe_load((trained.path / "params.yaml").read_text())
    params["evaluate"]["domain_shift"] = {"data": {"source": "folder", "path": str(other)},
                                          "class_map": {"kitty": "cat", "doggo": "dog"}, "max_per_class": 5}
    out = tmp_path / "eval"
    result = scoring.evaluate("tiny_mlp", trained.path / "models/tiny_mlp", trained.path / "data/prepared", out,
                                 params)["domain_shift"]
    assert result["samples"] == 10 and result["dropped_unmapped"] == 4 and result["dropped_by_class"] == {"bird": 4}
    assert result["source"] == "folder" and result["unreadable"] == 0
    # oracle: predict the same mapped images directly
    model, _ = scoring.load_model("tiny_mlp", trained.path / "models/tiny_mlp", ["cat", "dog", "eel"])
    paths = [p for c in ("doggo", "kitty") for p in sorted((other / c).iterdir())[:5]]
    prepare = from_shape(params["prepare"], model.input_shape[1:])  # auto size and colour as the model took them
    x = np.stack([images.to_array(images.open_image(p.read_bytes(), 10**8), image_size(prepare), prepare["color"],
                                  prepare["resize"], False) for p in paths])
    truth = np.array([1] * 5 + [0] * 5)
    expected = (model.predict(x / 255.0, verbose=0).argmax(axis=1) == truth).mean()
    assert result["accuracy"] == pytest.approx(expected)
    assert json.loads((out / "metrics.json").read_text())["domain_shift"]["samples"] == 10
    params["evaluate"]["domain_shift"]["class_map"] = {"kitty": "lion"}
    with pytest.raises(UserError, match=r"class_map: \['lion'\] are not classes of the model"):
        scoring.evaluate("tiny_mlp", trained.path / "models/tiny_mlp", trained.path / "data/prepared", out,
                            params)


def test_the_dihedral_views_are_eight_distinct_turns_and_mirrors():
    from imageclf.evaluate import scoring

    image = np.zeros((1, 5, 5, 1), np.float32)
    image[0, 0, 1, 0] = 1.0  # one bright pixel off every symmetry axis
    spots = {tuple(np.argwhere(view(image).numpy()[0, :, :, 0] == 1.0)[0]) for view in scoring.views("dihedral")}
    assert len(spots) == 8
    assert len(scoring.views("flip")) == 2 and len(scoring.views("none")) == 1


def test_test_time_views_make_a_mirror_asymmetric_model_symmetric(trained):
    """A model that tells left-heavy from right-heavy images: averaged with the mirrors (flip) or over all eight views
    (dihedral), its first two classes become equally likely for every image, which plain they are not."""
    from keras import layers

    from imageclf.evaluate import scoring

    inputs = keras.Input((16, 16, 1))
    left = layers.GlobalAveragePooling2D()(layers.Cropping2D(((0, 0), (0, 8)))(inputs))
    right = layers.GlobalAveragePooling2D()(layers.Cropping2D(((0, 0), (8, 0)))(inputs))
    lean = layers.Subtract()([left, right])
    logits = layers.Concatenate()([lean, layers.Subtract()([right, left]), layers.Subtract()([left, left])])
    model = keras.Model(inputs, layers.Softmax()(layers.Rescaling(20.0)(logits)))
    prepared = trained.path / "data/prepared"
    plain = scoring.predict(model, prepared, "test", 5)[1]
    assert np.abs(plain[:, 0] - plain[:, 1]).max() > 0.5
    for kind in ("flip", "dihedral"):
        averaged = scoring.tta_probabilities(model, prepared, "test", 5, kind, plain)
        np.testing.assert_allclose(averaged[:, 0], averaged[:, 1], atol=1e-6)


def test_tta_figures_sit_beside_the_plain_ones_and_dihedral_needs_square_images(trained, tmp_path, capsys):
    from imageclf.evaluate import scoring
    from imageclf.report import comparison

    root = tmp_path / "reports"
    shutil.copytree(trained.path / "reports", root)
    params = yaml.safe_load((trained.path / "params.yaml").read_text())
    params["evaluate"]["tta"] = "flip"
    plain = json.loads((root / "eval/tiny_lenet/metrics.json").read_text())["test"]
    m = scoring.evaluate("tiny_lenet", trained.path / "models/tiny_lenet", trained.path / "data/prepared",
                         root / "eval/tiny_lenet", params)
    assert m["test"]["accuracy"] == plain["accuracy"]  # the plain figures are what the exported model gives
    assert m["test"]["tta"]["views"] == "flip" and 0 <= m["test"]["tta"]["accuracy"] <= 1
    bars = capsys.readouterr().err  # the predicts a user waits on show their progress, each view too
    assert "evaluate test: 100%|" in bars and "evaluate test view 2: 100%|" in bars, bars
    frame = comparison.write(["tiny_lenet", "tiny_mlp"], root, "test").set_index("model")
    assert frame.loc["tiny_lenet", "test_tta_accuracy"] == m["test"]["tta"]["accuracy"]
    assert pd.isna(frame.loc["tiny_mlp", "test_tta_accuracy"])  # evaluated without TTA
    prepared = tmp_path / "prepared"
    shutil.copytree(trained.path / "data/prepared", prepared)
    meta = json.loads((prepared / "meta.json").read_text())
    (prepared / "meta.json").write_text(json.dumps({**meta, "shape": [16, 12, 1]}))
    params["evaluate"]["tta"] = "dihedral"
    with pytest.raises(UserError, match=r"^evaluate.tta is dihedral, whose quarter turns need square images, but "
                                        r"prepare gives 16x12; use tta: flip$"):
        scoring.evaluate("tiny_lenet", trained.path / "models/tiny_lenet", prepared, tmp_path / "x", params)
