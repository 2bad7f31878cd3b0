"""Transfer learning: every backbone trains, real Lite0 ImageNet weights, the feature cache, fine-tuning, bad input."""

from __future__ import annotations

import copy
import json
import math
import shutil
import urllib.error
from pathlib import Path

import h5py
import keras
import matplotlib.cbook
import numpy as np
import pytest
import yaml
from conftest import ROOT, Project, make_folder_tree
from PIL import Image
from sklearn.linear_model import LogisticRegression

from imageclf.cache.shards import load_split
from imageclf.core.errors import UserError
from imageclf.models import efficientnet_lite, features, transfer
from imageclf.models.registry import REGISTRY
from imageclf.train import checkpoints, config

FMNIST = Path("/usr/share/datasets/fashion-mnist")
APPLICATIONS = [name for name in transfer.BACKBONES if name != "efficientnet_lite0"]


def build(shape=(16, 16, 1), classes=3, **hyper) -> keras.Model:
    return REGISTRY["transfer"].build(shape, classes, **hyper)


@pytest.mark.parametrize("backbone", APPLICATIONS)
def test_every_application_backbone_builds_and_trains_a_step_from_scratch(backbone, capsys):
    keras.utils.set_random_seed(0)
    model = build(backbone=backbone, weights=None, mode="scratch", dense=[8, 4], batch_norm=True, dropout=0.1)
    head_kinds = [type(layer).__name__ for layer in model.get_layer("head").layers]
    assert head_kinds.count("Dense") == 3 and head_kinds.count("BatchNormalization") == 2
    minimum = transfer.BACKBONES[backbone].min_size
    assert f"16x16 px images are smaller than {backbone}'s minimum of {minimum} px" in capsys.readouterr().err
    model.compile("adam", loss="sparse_categorical_crossentropy", run_eagerly=True)  # no graph tracing: seconds
    x = np.random.default_rng(0).random((2, 16, 16, 1), dtype=np.float32)  # grey: repeated to RGB in the model
    before = [w.copy() for w in transfer.base_of(model).get_weights()]
    assert math.isfinite(float(model.train_on_batch(x, np.array([0, 2]))))
    assert any(not np.array_equal(a, b) for a, b in zip(before, transfer.base_of(model).get_weights(), strict=True))
    assert model(x).shape == (2, 3)


def test_lite0_with_packaged_weights_recognises_a_real_photo():
    """matplotlib's sample photo of Grace Hopper in uniform: ImageNet class 652 is 'military uniform'."""
    photo = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    w, h = photo.size
    side = min(w, h)
    photo = photo.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)).resize((224, 224))
    model = efficientnet_lite.efficientnet_lite0((224, 224, 3), include_top=True)
    efficientnet_lite.load_pth(model, efficientnet_lite.packaged_weights())
    probs = model.predict(efficientnet_lite.preprocess(np.asarray(photo, np.float32)[None]), verbose=0)[0]
    assert probs.argmax() == 652 and probs[652] > 0.3


@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make test installs it)")
def test_frozen_imagenet_features_beat_random_weights_by_a_wide_margin():
    from imageclf.data import fashion_mnist

    data = fashion_mnist.load(FMNIST, allow_download=False)
    (x_train, y_train), (x_test, y_test) = [(x[:1000, ..., None] / 255.0, y[:1000]) for x, y in data.values()]

    def probe(weights: str | None) -> float:
        keras.utils.set_random_seed(0)
        ex = transfer.extractor((28, 28, 1), "efficientnet_lite0", weights, 48, "frozen" if weights else "scratch",
                                "avg")
        clf = LogisticRegression(max_iter=3000).fit(ex.predict(x_train, verbose=0), y_train)
        return clf.score(ex.predict(x_test, verbose=0), y_test)

    pretrained, random = probe("imagenet"), probe(None)
    assert pretrained > 0.8 and pretrained > random + 0.15, (pretrained, random)


# --- the feature cache and the train stage -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite0_built(tmp_path_factory) -> Project:
    """A prepared 16 px grey dataset (3 classes) with Lite0 features cached, built once."""
    base = tmp_path_factory.mktemp("transfer")
    root = make_folder_tree(base / "imgs", {"a": 24, "b": 24, "c": 24})
    (base / "project").mkdir()
    project = Project(base / "project")
    project.params["data"].update(source="folder", path=str(root))
    project.params["prepare"].update(image_size=16, color="grayscale")
    project.params["split"]["fractions"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    project.params["train_defaults"].update(epochs=3, batch_size=8, patience=3)
    project.params["features"] = {"lite0": {"backbone": "efficientnet_lite0", "weights": "imagenet",
                                            "input_size": 32, "pooling": "avg"}}
    project.params["train"]["lite0"] = {"family": "transfer", "features": "lite0", "dense": [16]}
    project.params["models"]["transfer"] = ["lite0"]
    project.run("download", "split", "prepare", "features")
    return project


@pytest.fixture
def lite0_project(lite0_built: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The built project as this test's working directory, with params the test may change for itself."""
    monkeypatch.chdir(lite0_built.path)
    monkeypatch.setattr(lite0_built, "params", copy.deepcopy(lite0_built.params))
    return lite0_built


def train(project: Project, name: str) -> dict:
    from imageclf.train.transfer import train_entry

    return train_entry(project.params, name, Path("models") / name, Path("reports/train") / name)


def test_features_stage_caches_each_split_and_keeps_an_unchanged_set(lite0_project, capsys):
    meta = json.loads(Path("data/features/lite0/meta.json").read_text())
    assert meta["key"] == {"backbone": "efficientnet_lite0", "weights": "imagenet", "input_size": 32,
                           "pooling": "avg"}
    assert meta["shape"] == [1280] and sum(meta["splits"].values()) == 72
    x, y = features.load(Path("data/features/lite0"), "train")
    assert x.shape == (meta["splits"]["train"], 1280) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.array_equal(y, load_split(Path("data/prepared"), "train")[1])
    written = {f.name: f.stat().st_mtime_ns for f in Path("data/features/lite0").iterdir()}
    entry = lite0_project.params["train"]["lite0"]
    entry.update(dense=[32, 8], lr=0.01, dropout=0.5)  # the head and lr of the frozen entry change, not its set
    lite0_project.run("features")
    assert "features lite0: up to date" in capsys.readouterr().out
    assert {f.name: f.stat().st_mtime_ns for f in Path("data/features/lite0").iterdir()} == written


def test_a_run_of_from_scratch_models_computes_no_feature_set(project, tmp_path):
    project.params["data"].update(source="folder", path=str(make_folder_tree(tmp_path / "t", {"a": 6, "b": 6})))
    project.params["models"]["transfer"] = []
    project.run("download", "split", "prepare", "features")
    assert not (project.path / "data/features/efficientnet_lite0").exists()
    assert json.loads((project.path / "reports/data/features.json").read_text()) == {}


def test_a_set_no_listed_entry_trains_on_is_not_computed(project, tmp_path, capsys):
    project.params["data"].update(source="folder", path=str(make_folder_tree(tmp_path / "t", {"a": 6, "b": 6})))
    project.params["features"] = {"lite0": {"backbone": "efficientnet_lite0", "weights": "imagenet",
                                            "input_size": 32, "pooling": "avg"}}
    project.params["train"].update(tuned={"family": "transfer", "mode": "finetune", "input_size": 32},
                                   augmented={"family": "transfer", "features": "lite0", "augment": 1})
    project.params["models"]["transfer"] = ["tuned", "augmented"]  # neither reads cached features
    project.run("download", "split", "prepare", "features")
    assert not (project.path / "data/features/lite0").exists()
    assert json.loads((project.path / "reports/data/features.json").read_text()) == {}
    assert "no set (no listed transfer entry names one)" in capsys.readouterr().out


def test_head_on_cached_features_predicts_like_the_end_to_end_model(lite0_project, capsys):
    summary = train(lite0_project, "lite0")
    assert "training the head on cached features data/features/lite0" in capsys.readouterr().out
    model = keras.models.load_model("models/lite0/model.keras")  # the saved end-to-end model
    images, labels = load_split(Path("data/prepared"), "test")
    end_to_end = model.predict(np.asarray(images, np.float32) / 255.0, verbose=0)
    cached, cached_labels = features.load(Path("data/features/lite0"), "test")
    on_features = model.get_layer("head").predict(cached, verbose=0)
    assert np.array_equal(cached_labels, labels)
    np.testing.assert_allclose(on_features, end_to_end, atol=1e-5)
    assert np.array_equal(on_features.argmax(1), end_to_end.argmax(1))
    assert summary["params_trainable"] < summary["params_non_trainable"]  # the backbone stayed frozen


def test_input_size_auto_sees_a_small_dataset_larger_and_train_builds_what_features_extracted(lite0_project):
    """72 images of 16 px: auto raises them to the backbone's 224 px (folder_rgb_50class_5000's Lite0: 62.0% at 48 px,
    78.6% at 176), 5,000 to 176 px, Fashion-MNIST's 70,000 stay at 48; the train stage builds the model at the size
    the features stage chose, so the head trained on cached features predicts like the saved end-to-end model."""
    assert transfer.auto_input_size((28, 28), 70_000) == (48, 48) and transfer.auto_input_size((300, 300), 72) == (
        300, 300)
    assert transfer.auto_input_size((32, 32), 5_000) == (176, 176)
    lite0_project.params["features"]["auto"] = {**lite0_project.params["features"]["lite0"], "input_size": "auto"}
    lite0_project.params["train"]["auto"] = {"family": "transfer", "features": "auto", "dense": [16], "epochs": 1}
    lite0_project.params["models"]["transfer"] = ["lite0", "auto"]
    lite0_project.run("features")
    seen = json.loads(Path("reports/data/features.json").read_text())["auto"]
    assert (seen["input_height"], seen["input_width"]) == (224, 224)
    # the set is keyed on the size it was extracted at: one extracted by an earlier auto rule is not reused
    assert json.loads(Path("data/features/auto/meta.json").read_text())["key"]["input_size"] == [224, 224]
    train(lite0_project, "auto")
    model = keras.models.load_model("models/auto/model.keras")
    images, _ = load_split(Path("data/prepared"), "test")
    cached, _ = features.load(Path("data/features/auto"), "test")
    np.testing.assert_allclose(model.get_layer("head").predict(cached, verbose=0),
                               model.predict(np.asarray(images, np.float32) / 255.0, verbose=0), atol=1e-5)


FINETUNE = {"family": "transfer", "input_size": 32, "dense": [16], "mode": "finetune", "finetune_top_n": 10,
            "head_epochs": 1, "epochs": 2}


@pytest.mark.parametrize(("entry", "killed_after"), [
    ({"features": "lite0", "dense": [16], "epochs": 3}, 2),  # a head on cached features
    # killed at the end of the head phase: the resume starts the fine-tuning phase; then the retrain on train+val
    # fine-tunes in the same two phases
    ({**FINETUNE, "retrain_full_epochs": 2}, 1),
], ids=["frozen-head", "finetune-boundary"])
def test_an_interrupted_transfer_run_resumes_to_the_same_model(lite0_project, capsys, monkeypatch, entry,
                                                               killed_after):
    entry = {"family": "transfer", **entry}
    lite0_project.params["train"].update(straight=entry, stopped=entry)
    train(lite0_project, "straight")

    class Killed(Exception):
        pass

    save = checkpoints.Checkpoints.on_epoch_end

    def die(self, epoch, logs=None):
        save(self, epoch, logs)
        if epoch + 1 == killed_after:
            raise Killed

    with monkeypatch.context() as mp, pytest.raises(Killed):
        mp.setattr(checkpoints.Checkpoints, "on_epoch_end", die)
        train(lite0_project, "stopped")
    train(lite0_project, "stopped")
    out = capsys.readouterr().out
    assert f"resuming after epoch {killed_after}" in out
    straight, resumed = (keras.models.load_model(f"models/{n}/model.keras") for n in ("straight", "stopped"))
    assert all(np.array_equal(a, b) for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True))
    if entry.get("mode") == "finetune":
        # the straight and the resumed run, each in its first fit and in its retrain on train+val
        assert out.count("fine-tuning the top 10 backbone layers from epoch 2") == 4
        lr = [float(r.split("\t")[-1]) for r in
              Path("reports/train/stopped/plots/metrics/train/learning_rate.tsv").read_text().splitlines()[1:]]
        assert lr == pytest.approx([1e-3, 1e-4])  # the second phase runs at lr * finetune_lr_factor
        base = transfer.base_of(resumed)
        assert all(layer.trainable for layer in base.layers[-10:])
        assert not any(layer.trainable for layer in base.layers[:-10] if layer.weights)


def test_augmentation_or_no_feature_set_trains_through_the_backbone(lite0_project, capsys, monkeypatch):
    """What fit consumes: 1280 cached features a picture for the plain frozen entry (with label smoothing: one-hot
    labels), the (augmented) pictures for an entry with augment > 0, cutmix (mixed one-hot labels) or with no
    features set."""
    consumed = []
    real_fit = keras.Model.fit

    def spy(self, x, *args, **kwargs):
        images, labels = next(iter(x))
        consumed.append((tuple(images.shape[1:]), tuple(labels.shape[1:])))
        return real_fit(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    entries = {"lite0_1": {}, "lite0_aug": {"augment": 1}, "lite0_cutmix": {"cutmix": 1.0},
               "lite0_smooth": {"label_smoothing": 0.1}}
    for name, keys in entries.items():
        lite0_project.params["train"][name] = {**lite0_project.params["train"]["lite0"], **keys, "epochs": 1}
    lite0_project.params["train"]["lite0_64"] = {"family": "transfer", "input_size": 64, "dense": [16], "epochs": 1}
    for name in (*entries, "lite0_64"):
        train(lite0_project, name)
    picture, features, integer, one_hot = (16, 16, 1), (1280,), (), (3,)
    assert consumed == [(features, integer), (picture, integer), (picture, one_hot), (features, one_hot),
                        (picture, integer)]
    out = capsys.readouterr().out
    assert "augment 1 changes every image each epoch, so cached features are not used" in out
    assert "cutmix 1.0 changes every image each epoch, so cached features are not used" in out
    assert "training through the frozen backbone (slower); name a params.yaml 'features:' set" in out


def test_a_frozen_entry_takes_its_backbone_keys_from_the_feature_set_it_names(lite0_project, tmp_path):
    params = lite0_project.params
    cfg = config.model_config(params, "lite0")
    assert {k: cfg["hyper"][k] for k in features.FEATURE_KEYS} == params["features"]["lite0"]
    for entry, message in (({"input_size": 64}, r"'train.x' sets input_size and names features set 'lite0', which "
                                                r"fixes them"),
                           ({"features": "lite1"}, r"'train.x.features' is 'lite1', not a set under 'features:' "
                                                   r"\(did you mean 'lite0'\?\)"),
                           ({"mode": "finetune"}, r"'train.x.features' needs mode frozen")):
        params["train"]["x"] = {**params["train"]["lite0"], **entry}
        with pytest.raises(UserError, match=message):
            config.model_config(params, "x")
    stale = tmp_path / "features"  # a set computed from other data is never read: one line, not the slow path
    shutil.copytree("data/features/lite0", stale / "lite0")
    meta = json.loads((stale / "lite0/meta.json").read_text())
    (stale / "lite0/meta.json").write_text(json.dumps({**meta, "prepared": "other"}))
    with pytest.raises(UserError, match=r"does not hold features.lite0 of the current prepared data"):
        features.inputs(cfg, config.hyperparameters(cfg), Path("data/prepared"), stale)


def test_feature_batches_are_keyed_on_the_epoch_and_can_oversample(tmp_path):
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10, np.int32)
    np.save(tmp_path / "train.npy", np.arange(100, dtype=np.float32)[:, None])
    np.save(tmp_path / "train_labels.npy", labels)

    def drawn(**kw) -> list[np.ndarray]:
        ds = features.dataset(tmp_path, "train", 32, seed=3, epochs=(0, 3), **kw)
        return [x.numpy().ravel() for x, _ in ds.take(12)]

    shuffled = drawn(shuffle=True)
    assert [b.tolist() for b in shuffled] == [b.tolist() for b in drawn(shuffle=True)]
    assert sorted(np.concatenate(shuffled[:4]).tolist()) == list(range(100))  # an epoch is a permutation
    assert np.concatenate(shuffled[:4]).tolist() != np.concatenate(shuffled[4:8]).tolist()
    resumed = features.dataset(tmp_path, "train", 32, shuffle=True, seed=3, epochs=(1, 3))
    assert [x.numpy().ravel().tolist() for x, _ in resumed.take(4)] == [b.tolist() for b in shuffled[4:8]]
    balanced = np.concatenate(drawn(oversample=True)).astype(int)
    share = np.bincount(labels[balanced], minlength=3) / len(balanced)
    assert np.all(np.abs(share - 1 / 3) < 0.08), share


# --- weights: files, formats, offline, bad input ---------------------------------------------------------------


def save_legacy_h5(model: keras.Model, path: Path) -> Path:
    """The format of the files keras.applications downloads (Keras 2 .h5 weights)."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


def test_a_legacy_h5_weight_file_loads_and_one_of_another_architecture_is_named(tmp_path):
    keras.utils.set_random_seed(1)
    source = transfer.load_backbone("mobilenet_v2", (32, 32, 3), None)
    path = save_legacy_h5(source, tmp_path / "mobilenet_v2_notop.h5")
    loaded = transfer.load_backbone("mobilenet_v2", (32, 32, 3), str(path))
    assert all(np.array_equal(a, b) for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True))
    with pytest.raises(UserError, match=r"mobilenet_v2_notop.h5 does not fit resnet50: Layer count mismatch") as err:
        transfer.load_backbone("resnet50", (32, 32, 3), str(path))
    assert "\n" not in str(err.value)


def test_a_keras3_weights_file_loads_and_one_of_another_architecture_is_one_line(tmp_path):
    path = tmp_path / "vgg16.weights.h5"
    keras.utils.set_random_seed(1)
    source = transfer.load_backbone("vgg16", (32, 32, 3), None)
    source.save_weights(path)
    loaded = transfer.load_backbone("vgg16", (32, 32, 3), str(path))
    assert all(np.array_equal(a, b) for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True))
    with pytest.raises(UserError, match=r"does not fit vgg19") as err:
        transfer.load_backbone("vgg19", (32, 32, 3), str(path))
    assert "\n" not in str(err.value)


def test_imagenet_offline_names_the_file_and_the_keras_cache(monkeypatch, tmp_path):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", offline)
    monkeypatch.setattr("keras.src.backend.config.keras_home", lambda: str(tmp_path / "kh"))
    with pytest.raises(UserError) as err:
        build(backbone="resnet50", weights="imagenet")
    message = str(err.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5, which cannot be downloaded" in message
    assert str(tmp_path / "kh" / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5") in message
    assert "\n" not in message


def check_entry(**entry) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["t"] = {"family": "transfer", **entry}
    config.model_config(params, "t")


@pytest.mark.parametrize(("entry", "message"), [
    ({"backbone": "resnet51"}, r"'train.t.backbone' is 'resnet51', not a known backbone \(did you mean 'resnet50'"),
    ({"weights": "/nowhere/w.h5"}, r"'train.t.weights' is '/nowhere/w.h5', which does not exist"),
    ({"mode": "scratch"}, r"mode scratch \(random initial weights\) but weights 'imagenet'; set weights: null"),
    ({"mode": "frozen", "weights": None}, r"mode frozen but weights: null \(nothing to transfer\)"),
    ({"mode": "partly"}, r"'train.t.mode' must be one of frozen, finetune, scratch"),
    ({"backbone": "xception", "input_size": 32}, r"'train.t.input_size' must be null .* integer >= 71 for xception"),
    ({"pooling": "median"}, r"'train.t.pooling' must be one of auto, flatten, avg, max, avgpool4"),
    ({"mode": "finetune", "head_epochs": 15}, r"'train.t.head_epochs' \(15\) must be less than epochs \(15\)"),
    ({"mode": "finetune", "head_epochs": 3, "retrain_full_epochs": 2},
     r"'train.t.head_epochs' \(3\) must be less than retrain_full_epochs \(2\)"),
    ({"dense": [], "dropout": 2}, r"'train.t.dropout' must be a rate in \[0, 1\)"),
    ({"head_epochs": -1}, r"'train.t.head_epochs' must be >= 0, got -1"),
])
def test_bad_transfer_entries_are_one_clear_line(entry, message):
    with pytest.raises(UserError, match=message):
        check_entry(**entry)


@pytest.mark.parametrize(("stage", "entry", "message"), [
    ("train", {"family": "cnn_flowers"}, r"images of 16x16 px are too small for family 'cnn_flowers'"),
    ("train", {"family": "lenet5", "dropout": 1.5}, r"'train.bad.dropout' must be a rate in \[0, 1\)"),
    ("train", {"family": "transfer", "features": "lite0"}, r"'bad' is a transfer entry; list it under "
                                                            r"models.transfer, not models.scratch"),
    ("train_transfer", {"family": "transfer", "weights": "notes.h5"}, r"notes.h5 is not a weight file"),
    ("train_transfer", {"family": "transfer", "features": "lite0_64"}, r"does not hold features.lite0_64"),
    ("train_transfer", {"family": "transfer", "mode": "finetune", "input_size": 32, "head_epochs": 3,
                        "epochs": 3}, r"'train.bad.head_epochs' \(3\) must be less than epochs \(3\)"),
], ids=["too-small", "dropout", "wrong-group", "not-weights", "set-not-computed", "head-epochs"])
def test_every_entry_error_stops_the_stage_before_training(lite0_project, monkeypatch, stage, entry, message):
    """docs/bad-input.md: all are raised before training starts, at the stage itself (not only by the checks)."""
    Path("notes.h5").write_text("not hdf5")
    monkeypatch.setattr(keras.Model, "fit", lambda *a, **kw: pytest.fail("training started"))
    params = lite0_project.params
    params["features"]["lite0_64"] = {**params["features"]["lite0"], "input_size": 64}  # defined, never computed
    params["train"]["bad"] = entry
    params["models"]["scratch" if stage == "train" else "transfer"].append("bad")
    with pytest.raises(UserError, match=message):
        lite0_project.run(f"{stage} bad")
    assert not Path("models/bad/model.keras").exists()


def test_a_file_that_is_not_weights_is_refused_before_training(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(UserError, match=r"notes.h5 is not a weight file for resnet50 \(expected .h5 or .weights.h5\)"):
        check_entry(backbone="resnet50", weights=str(text))
    pth = tmp_path / "model.pth"
    shutil.copy(efficientnet_lite.packaged_weights(), pth)
    with pytest.raises(UserError, match=r"model.pth is not a weight file for vgg16"):
        check_entry(backbone="vgg16", weights=str(pth))


def test_lite0_weights_from_a_path_and_avgpool4_needs_a_large_map(tmp_path):
    model = build((32, 32, 3), 2, weights=str(efficientnet_lite.packaged_weights()), dense=[])
    packaged = build((32, 32, 3), 2, dense=[])
    assert all(np.array_equal(a, b) for a, b in zip(transfer.base_of(model).get_weights(),
                                                    transfer.base_of(packaged).get_weights(), strict=True))
    with pytest.raises(UserError, match=r"at least 4x4; efficientnet_lite0 at 32x32 px gives 1x1"):
        build((32, 32, 3), 2, pooling="avgpool4")
    assert build((128, 128, 3), 2, pooling="avgpool4").get_layer("extractor").output.shape[-1] == 1280
