"""Model zoo and training config: every family builds and trains a step; bad configs are one clear line."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import base_params

import imageclf.models.scratch  # noqa: F401  (registers the from-scratch families)
from imageclf.core.errors import UserError
from imageclf.models import registry
from imageclf.models.registry import HYPERPARAMETERS, REGISTRY
from imageclf.train import config, fit

FAMILIES = {"mlp": 16, "lenet5": 16, "cnn_lego": 16, "cnn_small": 16, "cnn_flowers": 81, "cnn_bn": 16}


@pytest.mark.parametrize(("family", "size"), FAMILIES.items())
def test_every_family_builds_and_trains_a_step(family, size):
    keras.utils.set_random_seed(0)
    model = REGISTRY[family].build((size, size, 3), 4)
    model.compile("adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((4, size, size, 3), dtype=np.float32)
    y = np.array([0, 1, 2, 3])
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert math.isfinite(float(loss))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    probs = model.predict(x, verbose=0)
    assert probs.shape == (4, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_registry_lists_the_families_and_every_hyperparameter_has_one_meaning():
    listing = registry.listing()  # imports the families defined elsewhere (transfer)
    assert set(FAMILIES) | {"transfer"} <= set(REGISTRY)
    for family in REGISTRY.values():
        assert f"| `{family.name}` |" in listing
        assert set(family.hyperparameters()) <= set(HYPERPARAMETERS)
    assert "| `dense` | units of each hidden dense layer before the classifier |" in listing
    with pytest.raises(TypeError, match=r"hyperparameters \['width'\] have no entry in registry.HYPERPARAMETERS"):
        registry.register("odd")(lambda shape, n, *, width=3: None)


def test_dense_and_dropout_mean_the_same_in_every_family():
    for family, size in FAMILIES.items():
        model = REGISTRY[family].build((size, size, 1), 3, dense=[7, 5], dropout=0.25)
        dense = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        assert dense == [7, 5, 3], family  # two hidden layers, then the classifier
        rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
        assert rates[-2:] == [0.25, 0.25], family  # one after each hidden dense layer


def test_cnn_bn_pooling_max_sees_an_object_anywhere_flatten_where_it_is():
    """pooling max (objects anywhere in the picture): the same picture moved by a multiple of the blocks' stride gets
    the same prediction; flatten (the default: centred objects) tells the places apart."""
    picture = np.zeros((1, 48, 48, 1), np.float32)
    picture[0, 8:16, 8:16] = 1.0
    moved = np.roll(picture, (24, 20), axis=(1, 2))  # multiples of 4: two 2x2 poolings
    for pooling, same in (("max", True), ("flatten", False)):
        keras.utils.set_random_seed(0)
        model = REGISTRY["cnn_bn"].build((48, 48, 1), 3, pooling=pooling)
        a, b = model.predict(np.concatenate([picture, moved]), verbose=0)
        assert np.allclose(a, b, atol=1e-6) == same, pooling


@pytest.mark.parametrize("family", ["cnn_bn", "lenet5"])
def test_default_head_is_position_free_on_large_images_and_flat_at_28_px(family):
    """pooling auto: at 64 px (a 14-16 cell map) the same picture moved by a multiple of the convolutions' stride gets
    the same prediction; at 28 px the head is the flattened one the published figures use."""
    picture = np.zeros((1, 64, 64, 1), np.float32)
    picture[0, 12:24, 12:24] = 1.0
    moved = np.roll(picture, (24, 20), axis=(1, 2))  # multiples of 4: two 2x2 poolings
    keras.utils.set_random_seed(0)
    a, b = REGISTRY[family].build((64, 64, 1), 3).predict(np.concatenate([picture, moved]), verbose=0)
    assert np.allclose(a, b, atol=1e-6)
    small = REGISTRY[family].build((28, 28, 1), 10)
    assert small.count_params() == REGISTRY[family].build((28, 28, 1), 10, pooling="flatten").count_params()


def test_lenet5_is_the_classic_architecture():
    model = REGISTRY["lenet5"].build((28, 28, 1), 10)
    assert model.count_params() == 61706  # 156 + 2416 + 48120 + 10164 + 850
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 2 and kinds.count("AveragePooling2D") == 2 and kinds.count("Dense") == 3


def test_lenet5_variants_are_params_only():
    params = base_params()
    cfg = config.model_config(params, "lenet5_wide_dropout_l2_lr")
    assert cfg["hyper"] == {"filters": [16, 26], "dropout": 0.3, "l2": 0.0001} and cfg["lr"] == 0.0005
    model = REGISTRY["lenet5"].build((28, 28, 1), 10, **cfg["hyper"])
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [16, 26]
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers) == 2
    assert convs[0].kernel_regularizer is not None


def test_cnn_lego_and_flowers_follow_the_spec():
    lego = REGISTRY["cnn_lego"].build((32, 32, 3), 50)
    convs = [layer for layer in lego.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.padding) for c in convs] == [(16, (4, 4), "same"), (32, (4, 4), "same"),
                                                                      (64, (4, 4), "same")]
    assert [d.units for d in lego.layers if isinstance(d, keras.layers.Dense)] == [2048, 1024, 50]
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in lego.layers) == 3 + 2
    flowers = REGISTRY["cnn_flowers"].build((81, 81, 3), 5)
    pools = [layer for layer in flowers.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert len(pools) == 4 and all(p.pool_size == (3, 3) and p.strides == (3, 3) for p in pools)


def with_entry(**entry) -> dict:
    params = base_params()
    params["train"]["probe"] = entry
    return params


@pytest.mark.parametrize(("entry", "message"), [
    ({"family": "lenet6"}, r"'train.probe.family' is 'lenet6', not a known family \(did you mean 'lenet5'\?\)"),
    ({"family": "lenet5", "optimizer": "adamw"}, r"'train.probe.optimizer' must be one of adam, sgd"),
    ({"family": "lenet5", "lr": 0}, r"'train.probe.lr' must be > 0, got 0"),
    ({"family": "lenet5", "lr": -0.1}, r"'train.probe.lr' must be > 0"),
    ({"family": "lenet5", "batch_size": 0}, r"'train.probe.batch_size' must be auto or an integer >= 1, got 0"),
    ({"family": "lenet5", "filtres": [8, 8]}, r"'train.probe.filtres' is neither .* \(did you mean 'filters'\?\)"),
    ({"family": "lenet5", "filters": "wide"}, r"'train.probe.filters' must be a list, got 'wide'"),
    ({"family": "lenet5", "filters": [8, -4]}, r"'train.probe.filters' must be a list of at least 1 integers >= 1, "
                                               r"got \[8, -4\]"),
    ({"family": "cnn_small", "filters": []}, r"'train.probe.filters' must be a list of at least 1 integers >= 1"),
    ({"family": "mlp", "dense": 64}, r"'train.probe.dense' must be a list, got 64"),
    ({"family": "mlp", "dense": [64, 0.5]}, r"'train.probe.dense' must be a list of integers >= 1"),
    ({"family": "lenet5", "dropout": -1}, r"'train.probe.dropout' must be a rate in \[0, 1\), got -1"),
    ({"family": "lenet5", "dropout": 1.5}, r"'train.probe.dropout' must be a rate in \[0, 1\), got 1.5"),
    ({"family": "cnn_flowers", "conv_dropout": 1}, r"'train.probe.conv_dropout' must be a rate in \[0, 1\)"),
    ({"family": "lenet5", "activation": "relux"}, r"'train.probe.activation' must be one of relu, .*; got 'relux' "
                                                  r"\(did you mean 'relu'\?\)"),
    ({"family": "lenet5", "l2": "strong"}, r"'train.probe.l2' must be a number, got 'strong'"),
    ({"family": "cnn_lego", "kernel": 0}, r"'train.probe.kernel' must be >= 1, got 0"),
    ({"family": "mlp", "units": [8]}, r"'train.probe.units' is neither .*; family keys: dense, dropout, l2"),
    ({"lr": 0.1}, r"'train.probe' needs a 'family' key"),
    ({"family": "mlp", "steps_per_execution": 0}, r"'train.probe.steps_per_execution' must be auto or an integer"),
    ({"family": "mlp", "lr_schedule": "onecycle"}, r"'train.probe.lr_schedule' must be one of constant, .*"),
    ({"family": "cnn_bn", "convs": 0}, r"'train.probe.convs' must be >= 1, got 0"),
])
def test_bad_model_entries(entry, message):
    with pytest.raises(UserError, match=message) as err:
        config.model_config(with_entry(**entry), "probe")
    assert "\n" not in str(err.value)


def test_missing_default_and_unknown_entry():
    params = base_params()
    del params["train_defaults"]["patience"]
    with pytest.raises(UserError, match=r"missing key 'train.lenet5.patience'"):
        config.model_config(params, "lenet5")
    with pytest.raises(UserError, match=r"no model entry 'train.nope'; entries: mlp, lenet5"):
        config.model_config(base_params(), "nope")


def test_image_too_small_for_a_family():
    with pytest.raises(UserError, match=r"images of 28x28 px are too small for family 'cnn_flowers' \(needs >= 81"):
        config.check_input(REGISTRY["cnn_flowers"], (28, 28, 1), "flowers")
    config.check_input(REGISTRY["lenet5"], (28, 28, 1), "lenet5")


def test_learning_rate_schedules():
    cfg = {**base_params()["train_defaults"], "lr": 0.01, "lr_schedule": "exp_decay", "decay_start": 8,
           "decay_rate": 0.1, "epochs": 20}
    assert [fit.learning_rate(cfg, e) for e in (0, 7)] == [0.01, 0.01]
    assert fit.learning_rate(cfg, 8) == pytest.approx(0.01 * math.exp(-0.1))
    assert fit.learning_rate(cfg, 10) == pytest.approx(0.01 * math.exp(-0.3))
    cosine = {**cfg, "lr_schedule": "cosine"}
    assert fit.learning_rate(cosine, 0) == 0.01 and fit.learning_rate(cosine, 10) == pytest.approx(0.005)
    assert fit.learning_rate({**cfg, "lr_schedule": "constant"}, 15) == 0.01
    warm = {**cfg, "lr_schedule": "warmup_cosine", "warmup_epochs": 2, "epochs": 12}
    assert [fit.learning_rate(warm, e) for e in (0, 1, 2)] == pytest.approx([0.01 / 3, 0.02 / 3, 0.01])
    assert fit.learning_rate(warm, 7) == pytest.approx(0.005)  # half way through the 10 cosine epochs
    assert fit.learning_rate(warm, 11) < 0.0003


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop", "adadelta"])
def test_optimizers(name):
    cfg = {**base_params()["train_defaults"], "optimizer": name, "lr": 0.02, "weight_decay": 1e-4}
    opt = fit.make_optimizer(cfg)
    assert type(opt).__name__.lower() == name and float(opt.learning_rate) == pytest.approx(0.02)
    assert opt.weight_decay == pytest.approx(1e-4)


def test_balanced_class_weights():
    labels = np.array([0] * 90 + [1] * 10)
    weights = fit.class_weights(labels, 3)
    assert weights[0] == pytest.approx(100 / (2 * 90)) and weights[1] == pytest.approx(100 / (2 * 10))
    assert weights[2] == 1.0  # absent from train


def test_mixed_precision_keeps_float32_probabilities():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = REGISTRY["cnn_small"].build((16, 16, 1), 3)
        model.compile("adam", loss="sparse_categorical_crossentropy")
        x = np.random.default_rng(0).random((4, 16, 16, 1), dtype=np.float32)
        assert math.isfinite(float(model.train_on_batch(x, np.array([0, 1, 2, 0]))))
        assert model.layers[1].compute_dtype == "float16" and model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_steps_per_execution_divides_the_epoch_so_the_epoch_keyed_data_never_shifts():
    auto = {"steps_per_execution": "auto"}
    assert [fit.steps_per_execution(auto, s) for s in (417, 416, 7, 1)] == [3, 16, 7, 1]
    assert fit.steps_per_execution({"steps_per_execution": 4}, 417) == 3

    def batches_trained(spe: int, steps: int = 12, epochs: int = 2) -> list[int]:
        seen = []

        class Counting(keras.Model):
            def train_step(self, data):
                seen.append(data[0][0, 0])  # the batch id (run eagerly: once per step)
                return super().train_step(data)

        inputs = keras.Input((3,))
        model = Counting(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
        model.compile("sgd", loss="sparse_categorical_crossentropy", steps_per_execution=spe, run_eagerly=True)
        data = tf.data.Dataset.range(1000).map(lambda i: (tf.fill((2, 3), tf.cast(i, tf.float32)),
                                                           tf.zeros(2, tf.int32)))
        model.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0)
        return [int(v) for v in seen]

    assert batches_trained(fit.steps_per_execution(auto, 12)) == list(range(24))
    assert len(batches_trained(5)) > 24  # Keras rounds an epoch up to whole executions: what the divisor avoids
