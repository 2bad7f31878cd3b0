"""Grad-CAM: the heat map points at what drove the predicted class, through nested models too; none for an MLP."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from imageclf.evaluate import gradcam


def two_blob_model() -> keras.Model:
    """Channel 0 of the image is evidence for class 0, channel 1 for class 1 (a 1x1 convolution copies them)."""
    inputs = keras.Input((8, 8, 2))
    maps = layers.Conv2D(2, 1, use_bias=False, name="copy")(inputs)
    x = layers.GlobalAveragePooling2D()(maps)
    outputs = layers.Dense(2, activation="softmax", use_bias=False, name="vote")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("copy").set_weights([np.eye(2).reshape(1, 1, 2, 2)])
    model.get_layer("vote").set_weights([10 * np.eye(2)])
    return model


def blobs() -> np.ndarray:
    image = np.zeros((1, 8, 8, 2), np.float32)
    image[0, :3, :3, 0] = 1.0  # class-0 evidence top left
    image[0, 5:, 5:, 1] = 1.0  # class-1 evidence bottom right
    return image


def test_the_heat_map_lies_on_the_evidence_of_the_class_asked_for():
    explainer = gradcam.explainer(two_blob_model())
    heat0, heat1 = (gradcam.gradcam(explainer, blobs(), np.array([k]))[0] for k in (0, 1))
    assert heat0.shape == (8, 8) and heat0.max() == 1.0
    assert heat0[:3, :3].mean() > 0.9 and heat0[5:, 5:].max() == 0.0
    assert heat1[5:, 5:].mean() > 0.9 and heat1[:3, :3].max() == 0.0


def test_a_backbone_nested_in_a_model_is_reached_and_predictions_are_unchanged():
    inner = two_blob_model()
    backbone = keras.Model(inner.input, inner.get_layer("copy").output, name="backbone")
    inputs = keras.Input((8, 8, 2))
    features = keras.Model(inputs, layers.GlobalAveragePooling2D()(backbone(inputs)), name="extractor")
    head_in = keras.Input((2,))
    head = keras.Model(head_in, inner.get_layer("vote")(head_in), name="head")
    outer_in = keras.Input((8, 8, 2))
    model = keras.Model(outer_in, head(features(outer_in)))  # the shape of a transfer model
    explainer = gradcam.explainer(model)
    maps, probs = explainer(blobs())
    assert maps.shape == (1, 8, 8, 2)
    np.testing.assert_allclose(probs, model(blobs()), atol=1e-6)
    heat = gradcam.gradcam(explainer, blobs(), np.array([1]))[0]
    assert heat[5:, 5:].mean() > 0.9 and heat[:3, :3].max() == 0.0


def test_an_mlp_has_no_grad_cam_and_the_panel_says_so(tmp_path):
    inputs = keras.Input((8, 8, 1))
    mlp = keras.Model(inputs, layers.Dense(2, activation="softmax")(layers.Flatten()(inputs)))
    assert gradcam.explainer(mlp) is None
    images = np.zeros((4, 8, 8, 1), np.uint8)
    y = pred = np.array([0, 1, 0, 1])
    assert not gradcam.panel(mlp, "mlp", images, y, pred, [], ["a", "b"], 2, tmp_path / "gradcam.png")
    assert (tmp_path / "gradcam.png").stat().st_size > 0


def test_the_panel_shows_the_gallerys_mistakes_then_correct_images():
    y = np.array([0, 0, 0, 1, 1, 2, 2])
    pred = np.array([1, 1, 0, 1, 0, 2, 1])
    rows = gradcam.chosen_images([(0, 1), (2, 1)], y, pred, per_pair=4, n_classes=3)
    assert [list(r) for r in rows] == [[0, 1], [6], [2, 3, 5]]


def test_nothing_to_show_is_a_note_not_a_crash(tmp_path):
    model = two_blob_model()
    images = np.zeros((3, 8, 8, 2), np.uint8)
    y, pred = np.array([0, 0, 1]), np.array([1, 1, 0])  # every prediction wrong, no pair listed
    assert gradcam.chosen_images([], y, pred, per_pair=4, n_classes=2) == []
    assert not gradcam.panel(model, "m", images, y, pred, [], ["a", "b"], 4, tmp_path / "gradcam.png")
    assert (tmp_path / "gradcam.png").stat().st_size > 0
