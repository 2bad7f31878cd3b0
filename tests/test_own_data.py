"""A user's own dataset with only `data:` set: sizes, colour and training budgets come from the data, and the report
says when a run is not trustworthy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, make_folder_tree, pattern_image
from PIL import Image

from imageclf.cache import settings as prepare_settings
from imageclf.data import images
from imageclf.report import diagnostics
from imageclf.train import settings as train_settings


def _shape_picture(size: tuple[int, int], colour: tuple[int, int, int], mode: str, shift: int = 0) -> Image.Image:
    arr = np.zeros((size[1], size[0], 4), np.uint8)
    top, left = size[1] // 4 + shift % 3, size[0] // 4 + shift // 3  # every picture its own pixels
    arr[top: top + size[1] // 2, left: left + size[0] // 2] = (*colour, 255)
    img = Image.fromarray(arr, "RGBA")
    return img if mode == "RGBA" else img.convert(mode)


@pytest.mark.parametrize(("picture", "grey"), [
    (lambda: pattern_image(0, 0, 24, "L"), True),
    (lambda: pattern_image(1, 0, 24, "RGB"), True),  # grey pixels stored as RGB
    (lambda: _shape_picture((24, 24), (200, 30, 30), "RGB"), False),
    (lambda: _shape_picture((24, 24), (90, 90, 90), "RGBA"), True),  # grey shape, transparent background
    (lambda: _shape_picture((24, 24), (30, 200, 30), "RGBA"), False),
    (lambda: _shape_picture((24, 24), (30, 30, 200), "P"), False),
])
def test_grey_is_told_from_colour_whatever_the_mode(tmp_path, picture, grey):
    path = tmp_path / "x.png"
    picture().save(path)
    assert images.inspect(path.read_bytes(), 10**8).grey is grey


def test_a_grey_jpeg_saved_as_rgb_stays_grey(tmp_path):
    path = tmp_path / "x.jpg"
    pattern_image(2, 3, 32, "RGB").save(path, quality=75)  # chroma rounding must not count as colour
    assert images.inspect(path.read_bytes(), 10**8).grey


def _info(widths, heights, grey):
    return pd.DataFrame({"width": widths, "height": heights, "grey": grey})


def test_auto_size_is_the_median_shorter_side_within_bounds():
    auto = {"image_size": "auto", "color": "auto", "max_auto_size": 96}
    assert prepare_settings.resolve(auto, _info([28] * 5, [28] * 5, [True] * 5))[0]["image_size"] == 28
    mixed = _info([30, 64, 64, 200, 640], [20, 48, 64, 100, 480], [True] * 5)  # shorter sides 20 48 64 100 480
    resolved, why = prepare_settings.resolve(auto, mixed)
    assert resolved["image_size"] == 64 and "median shorter side 64" in why["image_size"]
    big, why = prepare_settings.resolve(auto, _info([300] * 3, [300] * 3, [True] * 3))
    assert big["image_size"] == 96 and "capped by max_auto_size" in why["image_size"]
    assert prepare_settings.resolve(auto, _info([8] * 3, [8] * 3, [True] * 3))[0]["image_size"] == 16
    assert prepare_settings.resolve(auto, _info([50] * 3, [50] * 3, [True] * 3))[0]["image_size"] == 52  # to 4
    explicit = {**auto, "image_size": [20, 30], "color": "rgb"}
    assert prepare_settings.resolve(explicit, _info([300], [300], [True]))[0] == explicit


def test_auto_colour_is_grey_only_when_every_image_is():
    auto = {"image_size": 32, "color": "auto", "max_auto_size": 96}
    assert prepare_settings.resolve(auto, _info([9] * 3, [9] * 3, [True] * 3))[0]["color"] == "grayscale"
    resolved, why = prepare_settings.resolve(auto, _info([9] * 3, [9] * 3, [True, False, True]))
    assert resolved["color"] == "rgb" and why["color"] == "auto: 1 of 3 images in colour"


def test_prepare_resolves_auto_from_the_images_and_reports_it(project, tmp_path):
    root = tmp_path / "tree"
    for label, (name, colour) in enumerate({"red": (220, 20, 20), "green": (20, 200, 20)}.items()):
        (root / name).mkdir(parents=True)
        for i in range(8):
            size = (40, 40) if i % 2 else (44, 60)  # mixed sizes; shorter sides 40 and 44
            mode = "RGBA" if label else "RGB"
            _shape_picture(size, colour, mode, i).save(root / name / f"{i}.png")
    project.params["data"].update(source="folder", path=str(root))
    project.params["split"]["fractions"] = {"train": 0.5, "val": 0.25, "test": 0.25}
    assert project.params["prepare"]["image_size"] == "auto" and project.params["prepare"]["color"] == "auto"
    project.run("download", "split", "prepare")
    manifest = pd.read_csv(project.path / "data/raw/manifest.csv")
    assert not manifest["grey"].any()
    meta = json.loads((project.path / "data/prepared/meta.json").read_text())
    assert meta["shape"] == [44, 44, 3]  # median of 40 and 44 is 42, rounded to 44
    report = json.loads((project.path / "reports/data/prepare.json").read_text())
    assert report == {"height": 44, "width": 44, "channels": 3, "color": "rgb",
                      "image_size_from": "auto: median shorter side 42 px",
                      "color_from": "auto: 16 of 16 images in colour"}


def test_the_budget_gives_a_small_dataset_enough_steps_and_leaves_a_large_one_alone():
    cfg = {"batch_size": "auto", "epochs": 15, "min_steps": 1000, "augment": "auto", "hyper": {}}
    large = train_settings.resolve_budget(cfg, 53_330, 10)  # Fashion-MNIST's training split: exactly as before
    assert large["batch_size"] == 128 and large["passes_per_epoch"] == 1 and large["epochs"] == 15
    assert large["budget"]["steps_per_epoch"] == 417 and large["augment"] == 0
    small = train_settings.resolve_budget(cfg, 230, 12)  # the 288-image tree: 2 steps an epoch at batch 128 before
    assert small["batch_size"] == 16 and small["budget"]["steps_per_pass"] == 15
    passes = small["passes_per_epoch"]  # the fewest whole passes an epoch that reach min_steps in 15 epochs
    assert 15 * 15 * passes >= 1000 > 15 * 15 * (passes - 1) and small["epochs"] == 15
    assert small["budget"]["steps_per_epoch"] == 15 * passes
    assert small["augment"] == train_settings.AUTO_AUGMENT > 0  # 19 images a class
    frozen = train_settings.resolve_budget({**cfg, "hyper": {"features": "lite0"}}, 230, 12)
    assert frozen["augment"] == 0  # a head on cached features sees no augmented images
    explicit = train_settings.resolve_budget({**cfg, "batch_size": 128, "augment": 1, "min_steps": 0}, 230, 12)
    assert (explicit["batch_size"], explicit["augment"], explicit["passes_per_epoch"]) == (128, 1, 1)  # params win


COUNTS = {s: {"total": n, "a": n // 2, "b": n - n // 2} for s, n in (("train", 400), ("val", 100), ("test", 200))}


def _curve(values):
    return pd.DataFrame({"step": range(len(values)), "accuracy": values})


def test_diagnostics_stay_silent_on_a_healthy_run():
    trained = {"best_epoch": 9, "epochs_run": 14, "budget": {"epochs": 30}}
    scored = {"train": {"accuracy": 0.95}, "val": {"accuracy": 0.9},
              "test": {"accuracy": 0.9, "samples": 200, "accuracy_ci95_low": 0.86, "accuracy_ci95_high": 0.94}}
    curves = {"accuracy": _curve([0.7, 0.8, 0.85, 0.88, 0.9, 0.9]), "train_accuracy": _curve([0.7, 0.82, 0.87, 0.9,
                                                                                              0.92, 0.95])}
    assert diagnostics.diagnose(trained, scored, curves, "test", COUNTS) == []


def test_diagnostics_name_each_problem_and_its_fix():
    # the cnn_bn run the issue describes: train accuracy climbing, validation at chance, stopped at its best epoch
    trained = {"best_epoch": 6, "epochs_run": 6, "budget": {"epochs": 6}}
    scored = {"train": {"accuracy": 0.69}, "val": {"accuracy": 0.5},
              "test": {"accuracy": 0.52, "samples": 200, "accuracy_ci95_low": 0.45, "accuracy_ci95_high": 0.59}}
    curves = {"accuracy": _curve([0.5, 0.5, 0.5, 0.5, 0.51, 0.53]),
              "train_accuracy": _curve([0.6, 0.8, 0.9, 0.95, 0.97, 0.98])}
    found = {f.code: f.text for f in diagnostics.diagnose(trained, scored, curves, "test", COUNTS)}
    assert set(found) == {"at chance", "overfitting", "val mismatch", "still improving"}
    assert "raise epochs" in found["still improving"] and "min_steps" in found["val mismatch"]
    few = {"test": {"accuracy": 0.9, "samples": 20, "accuracy_ci95_low": 0.75, "accuracy_ci95_high": 1.0}}
    tiny = {**COUNTS, "val": {"total": 6, "a": 3, "b": 3}}
    codes = [f.code for f in diagnostics.diagnose({}, few, {}, "test", tiny)]
    assert codes == ["few images", "small val"]


def test_the_overfitting_hint_names_pooling_max_only_to_a_model_without_it():
    """cnn_bn at 28 px flattens (the hint applies), at 64 px pooling auto is already max (regex_grey_288's cnn_bn was
    told to use what it used)."""
    import imageclf.models.scratch  # noqa: F401  (registers the from-scratch families)
    from imageclf.models.registry import REGISTRY
    from imageclf.train.fit import param_counts

    scored = {"train": {"accuracy": 1.0}, "val": {"accuracy": 0.6}}
    for side, named in ((28, True), (64, False)):
        trained = param_counts(REGISTRY["cnn_bn"].build((side, side, 1), 3))
        found = {f.code: f.text for f in diagnostics.diagnose(trained, scored, {}, "test", COUNTS)}
        assert ("pooling: max" in found["overfitting"]) == named, side


def test_at_chance_on_a_few_images_says_they_cannot_tell():
    """5 of 9 right on 3 classes is within chance's margin, but a model right on half of 300 fresh images scores that
    too (bench/own_data.py, folder_grey_100's mlp): the warning must not say it learned nothing."""
    three = {s: {"total": 9, "a": 3, "b": 3, "c": 3} for s in ("train", "val", "test")}
    nine = {"test": {"accuracy": 5 / 9, "samples": 9, "accuracy_ci95_low": 0.22, "accuracy_ci95_high": 0.78}}
    many = {"test": {"accuracy": 0.34, "samples": 900, "accuracy_ci95_low": 0.31, "accuracy_ci95_high": 0.37}}
    for scored, says in ((nine, "on 9 images that cannot tell"), (many, "it learned nothing usable")):
        found = {f.code: f.text for f in diagnostics.diagnose({}, scored, {}, "test", three)}
        assert says in found["at chance"]


def test_the_report_marks_an_untrustworthy_run_and_its_verdicts(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 14, "b": 14, "c": 14})
    project.params["data"].update(source="folder", path=str(root))
    project.params["models"] = {"scratch": ["healthy", "broken"], "transfer": []}
    project.params["train"] = {"healthy": {"family": "lenet5", "filters": [4, 8], "dense": [16]},
                               "broken": {"family": "lenet5", "filters": [4, 8], "dense": [16], "epochs": 1,
                                          "min_steps": 0, "batch_size": 64, "lr": 1e-6}}
    stages = ["download", "split", "prepare"]
    for name in ("healthy", "broken"):
        stages += [f"train {name}", f"evaluate {name}"]
    project.run(*stages, "compare")
    table = pd.read_csv(project.path / "reports/compare/comparison.csv").set_index("model")
    assert "at chance" not in str(table.loc["healthy", "warnings"])  # (a 42-image tree: small val, few images)
    assert "at chance" in table.loc["broken", "warnings"]
    report = (project.path / "reports/report.md").read_text()
    assert "broken (at chance):" in report and "healthy (at chance)" not in report
    verdicts = pd.read_csv(project.path / "reports/compare/significance.csv")["verdict"]
    assert verdicts.str.contains("untrustworthy run, not a verdict on the family: .*broken: at chance").all()


def test_every_default_family_learns_a_small_tree_with_only_data_set(project, tmp_path):
    """The README's promise on a user's own data: 60 images, 3 classes, every default entry (scratch and transfer) at
    its default budget (min_steps included) clearly above chance (fa40764: cnn_bn sat at chance, 2 steps an epoch)."""
    root = make_folder_tree(tmp_path / "tree", {"a": 20, "b": 20, "c": 20})
    project.params["data"].update(source="folder", path=str(root))
    project.params["train_defaults"] = yaml.safe_load((ROOT / "params.yaml").read_text())["train_defaults"]
    project.params["split"]["fractions"] = {"train": 0.5, "val": 0.25, "test": 0.25}  # 15 images to score on
    entries = [*project.params["models"]["scratch"], *project.params["models"]["transfer"]]
    project.run("download", "split", "prepare", "features",
                *[f"{'train' if n in project.params['models']['scratch'] else 'train_transfer'} {n}" for n in entries],
                *[f"{'evaluate' if n in project.params['models']['scratch'] else 'evaluate_transfer'} {n}"
                  for n in entries], "compare")
    table = pd.read_csv(project.path / "reports/compare/comparison.csv").set_index("model")
    assert sorted(table.index) == sorted(entries)
    for name, row in table.iterrows():
        assert row["test_accuracy"] >= 0.8, (name, row["test_accuracy"], row["warnings"])
        assert "at chance" not in str(row["warnings"])


def test_a_dataset_without_a_test_split_goes_through_every_stage(project, tmp_path):
    """split.fractions test 0 with evaluate.split val: every stage runs, the audit included (it stopped on the
    test.npy the features stage does not write for an empty split), and the export chooses on val."""
    from test_audit import CLASSES, audited

    root = make_folder_tree(tmp_path / "tree", CLASSES)
    for i in range(3):  # class a's pictures filed under b
        pattern_image(0, 100 + i).save(root / "b" / f"planted {i}.png")
    p = project.params
    p["split"]["fractions"] = {"train": 0.75, "val": 0.25, "test": 0.0}
    p["evaluate"]["split"] = "val"
    labels, _, _ = audited(project, root)  # download to the audit, Lite0 features "lite0" at 48 px
    planted = labels[labels["path"].str.startswith("b/planted")]
    assert len(planted) >= 2 and set(planted["suggested"]) == {"a"}, labels
    assert set(labels["split"]) <= {"train", "val"}
    p["models"] = {"scratch": ["m1"], "transfer": ["t1"]}
    p["train"] = {"m1": {"family": "lenet5", "filters": [4, 8], "dense": [8], "epochs": 2},
                  "t1": {"family": "transfer", "features": "lite0", "dense": [8], "epochs": 2}}
    p["export"].update(formats=["onnx"], latency_runs=2)
    project.run("train m1", "train_transfer t1", "evaluate m1", "evaluate_transfer t1", "compare", "export")
    table = pd.read_csv(project.path / "reports/compare/comparison.csv").set_index("model")
    assert table["test_accuracy"].isna().all() and table["val_accuracy"].notna().all()
    chosen = json.loads((project.path / "reports/export/metrics.json").read_text())["model"]
    assert chosen == table["val_accuracy"].idxmax()
