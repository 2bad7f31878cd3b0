"""Grad-CAM (Selvaraju et al., 2017): which part of an image drove a prediction, from the gradient of the predicted
class over the last convolutional feature map (keras-io's recipe, with a gradient tape)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from imageclf.evaluate import plots

SPATIAL = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D, keras.Model)  # makes feature maps
PASSIVE = (layers.InputLayer, layers.MaxPooling2D, layers.AveragePooling2D, layers.Dropout, layers.SpatialDropout2D)


def _feature_layer(model: keras.Model) -> layers.Layer | None:
    """The last layer of the model's own graph whose output is a feature map of a convolution (or of a backbone):
    activations and batch norm after the last convolution count, pooling and dropout do not (they only coarsen)."""
    found, after_conv = None, False
    for layer in model.layers:
        after_conv = after_conv or isinstance(layer, SPATIAL)
        if after_conv and len(layer.output.shape) == 4 and not isinstance(layer, PASSIVE):
            found = layer
    return found


def explainer(model: keras.Model) -> keras.Model | None:
    """A model from the same input to [last convolutional feature map, probabilities]; None when there is none
    (an MLP). A map inside a nested model (a transfer model's backbone) is reached through the chain around it."""
    layer = _feature_layer(model)
    if layer is not None:
        # a nested model's `.output` is that of its own graph; its call in this graph is its inbound node's (Keras
        # has no public accessor for it)
        maps = layer._inbound_nodes[0].output_tensors[0] if isinstance(layer, keras.Model) else layer.output
        return keras.Model(model.inputs, [maps, model.outputs[0]])
    chain = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    for i in reversed(range(len(chain))):
        inner = explainer(chain[i]) if isinstance(chain[i], keras.Model) else None
        if inner is not None:  # the layers of a transfer model around its extractor form a single chain
            x = inputs = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
            for before in chain[:i]:
                x = before(x)
            maps, x = inner(x)
            for after in chain[i + 1:]:
                x = after(x)
            return keras.Model(inputs, [maps, x])
    return None


def gradcam(explain: keras.Model, images: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Heat maps [N, H, W] in [0, 1] at image resolution: where image i supports class classes[i].

    The score is the log-probability of the class (the models end in softmax): unlike the probability itself its
    gradient does not vanish on confident predictions.
    """
    x = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        maps, probs = explain(x, training=False)
        maps = tf.cast(maps, tf.float32)
        score = tf.math.log(tf.gather(tf.cast(probs, tf.float32), classes, batch_dims=1) + 1e-12)
    grads = tape.gradient(score, maps)
    weights = tf.reduce_mean(grads, axis=(1, 2))  # one weight per channel: its average gradient
    cam = tf.nn.relu(tf.einsum("bhwc,bc->bhw", maps, weights))
    cam = tf.image.resize(cam[..., None], images.shape[1:3])[..., 0]
    peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
    return (cam / tf.maximum(peak, 1e-12)).numpy()


def chosen_images(pairs: list[tuple[int, int]], y: np.ndarray, pred: np.ndarray, per_pair: int,
                  n_classes: int) -> list[np.ndarray]:
    """Rows of image indices: the gallery's misclassified images of each confused pair (pairs: indices of true
    and predicted class), then one correctly classified image of each of the first classes."""
    rows = [np.flatnonzero((y == t) & (pred == p))[:per_pair] for t, p in pairs]
    right = [np.flatnonzero((y == k) & (pred == k))[:1] for k in range(n_classes)]
    rows.append(np.concatenate(right)[:per_pair])
    return [row for row in rows if len(row)]


def panel(model: keras.Model, name: str, images: np.ndarray, y: np.ndarray, pred: np.ndarray,
          pairs: list[tuple[int, int]], classes: list[str], per_pair: int, out: Path) -> bool:
    """Write out: Grad-CAM of the gallery's images (uint8; pairs: confused (true, predicted) class indices) for the
    class the model predicted; a note instead when the model has no convolutional feature map or there is no image to
    show. Returns whether it drew heat maps."""
    explain = explainer(model)
    if explain is None:
        plots.note(f"Grad-CAM does not apply to {name}: it has no convolutional layer (an MLP).", out)
        return False
    chosen = chosen_images(pairs, y, pred, per_pair, len(classes))
    if not chosen:
        plots.note(f"Grad-CAM of {name}: no image to show (no confused pair above evaluate.min_errors errors and no "
                   "correct prediction).", out)
        return False
    rows = []
    for row in chosen:
        heat = gradcam(explain, images[row].astype(np.float32) / 255.0, pred[row])
        titles = [f"{classes[y[i]]}\n-> {classes[pred[i]]}" if y[i] != pred[i] else f"a real {classes[y[i]]}"
                  for i in row]
        rows.append((images[row], heat, titles))
    plots.heatmaps(rows, f"Grad-CAM of {name}: what supports the predicted class (red: most)\n"
                         "rows: the gallery's misclassified images; last row: correct predictions", out)
    return True
