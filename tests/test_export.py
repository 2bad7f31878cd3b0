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
