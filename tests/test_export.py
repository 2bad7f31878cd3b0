"""Choosing the model to export or predict with, and the export params: one-line errors naming the value."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import base_params

from imageclf.core import params
from imageclf.core.errors import UserError
from imageclf.deploy import selection, settings


def scored(tmp_path, **accuracies) -> None:
    for name, accuracy in accuracies.items():
        folder = tmp_path / name
        folder.mkdir()
        test = {} if accuracy is None else {"test": {"accuracy": accuracy, "macro_f1": 1 - accuracy}}
        (folder / "metrics.json").write_text(json.dumps({"trained_on": "train", **test}))


def test_best_is_the_highest_metric_and_ties_go_to_the_first_listed(tmp_path):
    scored(tmp_path, a=0.8, b=0.9, c=0.9, d=None)
    models = ["a", "b", "c", "d"]
    assert selection.choose("best", models, "test.accuracy", "x", tmp_path) == "b"
    assert selection.choose("best", ["c", "b"], "test.accuracy", "x", tmp_path) == "c"
    assert selection.choose("best", models, "test.macro_f1", "x", tmp_path) == "a"
    assert selection.choose("c", models, "test.accuracy", "x", tmp_path) == "c"  # a name is taken as it is


def test_a_model_that_cannot_be_chosen_is_one_line(tmp_path):
    scored(tmp_path, lenet5=0.8, mlp=None)
    with pytest.raises(UserError, match=r"^--model is 'lenet', not a model .* \(did you mean 'lenet5'\?\); listed: "
                                        r"lenet5, mlp; or use best$"):
        selection.choose("lenet", ["lenet5", "mlp"], "test.accuracy", "--model", tmp_path)
    with pytest.raises(UserError, match="no listed model has that metric"):
        selection.choose("best", ["mlp"], "test.accuracy", "x", tmp_path)
    with pytest.raises(UserError, match=r"ghost/metrics.json not found; evaluate ghost first"):
        selection.choose("best", ["ghost"], "test.accuracy", "x", tmp_path)


def test_the_default_chooses_on_val_and_the_card_says_which_split_chose_and_which_scored(tmp_path):
    for name, val, test in (("a", 0.9, 0.80), ("b", 0.8, 0.95)):  # b looks best only on the test images
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"val": {"accuracy": val},
                                                                  "test": {"accuracy": test}}))
    metric = base_params()["export"]["metric"]
    assert metric.startswith("val.")
    assert selection.choose("best", ["a", "b"], metric, "x", tmp_path) == "a"
    fair = selection.chosen_by("best", ["a", "b"], metric, "test")
    assert "chosen on val, scored on test" in fair and "Warning" not in fair
    biased = selection.chosen_by("best", ["a", "b"], "test.accuracy", "test")
    assert "Warning: chosen and scored on the same test images" in biased and "optimistic" in biased
    assert selection.chosen_by("a", ["a", "b"], "test.accuracy", "test") == "export.model, named in params.yaml"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("metric", "test.acc", "'export.metric' must be <split>.<metric> (split train, val or test; metric accuracy"),
    ("metric", "holdout.accuracy", "'export.metric' must be <split>.<metric>"),
    ("formats", ["onnx", "tflite"], "'export.formats' must list distinct formats among tf_saved_model, onnx, litert"),
    ("formats", [], "'export.formats' must list distinct formats"),
    ("tolerance", -1, "'export.tolerance' must be >= 0"),
])
def test_bad_export_params_name_the_key(tmp_path, key, value, message):
    raw = base_params()
    raw["export"][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError) as err:
        params.load({"export": settings.PARAMS}, path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_card_calls_code_or_params_changed_only_when_they_did(tmp_path, monkeypatch):
    import subprocess

    from imageclf.deploy import model_card

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "imageclf").mkdir()
    (tmp_path / "reports").mkdir()
    for name in ("imageclf/a.py", "params.yaml", "reports/metrics.json", "dvc.lock"):
        (tmp_path / name).write_text("stages: {}\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "run")
    monkeypatch.chdir(tmp_path)
    for name in ("reports/metrics.json", "dvc.lock"):  # what every dvc repro rewrites
        (tmp_path / name).write_text("stages: {train: {}}\n")
    card = model_card.provenance("m")
    assert card["code at that revision"] == "unchanged" and card["params at that revision"] == "unchanged"
    (tmp_path / "imageclf/a.py").write_text("y\n")
    (tmp_path / "params.yaml").write_text("y\n")
    card = model_card.provenance("m")
    assert card["code at that revision"] == "differs: imageclf/a.py"
    assert card["params at that revision"] == "differs: params.yaml"
