"""prepare stage: conversions, resize policies, shards round trip, offline augmentation, and the tf.data loader."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Project, make_folder_tree, noise_tree, pattern_image
from PIL import Image

from imageclf.cache.shards import ShardWriter, load_split
from imageclf.data import images


@pytest.fixture
def prepared(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 12, "b": 12, "c": 12})
    project.params["data"].update(source="folder", path=str(root))
    project.params["split"]["fractions"] = {"train": 0.5, "val": 0.25, "test": 0.25}
    project.params["prepare"].update(image_size=[16, 20], color="rgb", shard_mb=0.004)  # ~4 KiB shards
    project.run("download", "split", "prepare")
    return project, root


def test_shards_round_trip_every_image(prepared):
    project, root = prepared
    meta = json.loads((project.path / "data/prepared/meta.json").read_text())
    assert meta["shape"] == [16, 20, 3] and meta["classes"] == ["a", "b", "c"]
    assert len(meta["splits"]["train"]["shards"]) > 1  # small shard_mb: several shards
    for split in ("train", "val", "test"):
        pixels, labels = load_split(project.path / "data/prepared", split)
        order = pd.read_csv(project.path / f"data/prepared/{split}.csv")
        assert len(pixels) == len(order) == meta["splits"][split]["count"]
        for (path, label), got, got_label in zip(order[["path", "label"]].values, pixels, labels, strict=True):
            with Image.open(root / path) as img:
                expected = images.to_array(img, (16, 20), "rgb", "stretch", False)
            assert got_label == label
            np.testing.assert_array_equal(got, expected)
    split_list = pd.read_csv(project.path / "data/split/train.csv")
    train_order = pd.read_csv(project.path / "data/prepared/train.csv")
    assert sorted(train_order["path"]) == list(split_list["path"])
    assert list(train_order["path"]) != list(split_list["path"])  # written shuffled for streaming
    assert (project.path / "reports/data/augment_preview.png").stat().st_size > 1000


@pytest.mark.parametrize("storage", ["raw", "png"])
def test_offline_augment_writes_copies(project, tmp_path, storage):
    root = make_folder_tree(tmp_path / "tree", {"a": 6, "b": 6})
    project.params["data"].update(source="folder", path=str(root))
    project.params["prepare"].update(image_size=16, offline_augment=2, offline_augment_level=1, storage=storage)
    project.run("download", "split", "prepare")
    order = pd.read_csv(project.path / "data/prepared/train.csv")
    n = len(pd.read_csv(project.path / "data/split/train.csv"))
    assert len(order) == 3 * n and order["copy"].value_counts().to_dict() == {0: n, 1: n, 2: n}
    pixels, labels = load_split(project.path / "data/prepared", "train")
    assert (labels == order["label"].to_numpy()).all()
    first = order[order["copy"] == 0].reset_index()
    for k in (1, 2):  # each copy: the same image (path, label), changed, and still looking like its class
        rows = order[order["copy"] == k].reset_index()
        assert rows["path"].tolist() == first["path"].tolist() and rows["label"].tolist() == first["label"].tolist()
        copies, originals = pixels[rows["index"]].astype(float), pixels[first["index"]].astype(float)
        assert all(not np.array_equal(c, o) for c, o in zip(copies, originals, strict=True))
        flat = lambda x: (x.reshape(len(x), -1) - x.mean()) / x.std()  # noqa: E731
        nearest = np.argmax(flat(copies) @ flat(originals).T, axis=1)  # the most similar original picture
        assert (nearest == np.arange(len(nearest))).mean() >= 0.8, nearest
    assert len(load_split(project.path / "data/prepared", "val")[0]) == len(pd.read_csv("data/split/val.csv"))


def test_conversions_of_unusual_modes():
    base = pattern_image(1, 3)
    gray = np.asarray(base.convert("L"))
    deep = Image.fromarray(gray.astype(np.uint16) * 257)  # 16-bit
    np.testing.assert_array_equal(images.to_8bit(deep, "grayscale"), gray)
    cmyk = images.to_8bit(base.convert("CMYK"), "rgb")
    assert cmyk.mode == "RGB" and np.abs(np.asarray(cmyk, int) - np.asarray(base, int)).max() <= 2
    assert images.to_8bit(base.convert("P"), "rgb").mode == "RGB"
    transparent = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    assert np.asarray(images.to_8bit(transparent, "rgb")).tolist()[0][0] == [255, 255, 255]  # onto white
    assert images.to_8bit(Image.new("1", (4, 4), 1), "grayscale").getpixel((0, 0)) == 255


def test_exif_orientation_is_applied_at_decode(tmp_path):
    """A phone JPEG stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise to show)."""
    stored = np.zeros((10, 30), np.uint8)
    stored[:, :15] = 255  # left half white as stored
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = tmp_path / "phone.jpg"
    Image.fromarray(stored, "L").save(buf, exif=exif, quality=100)
    img = images.open_image(buf.read_bytes(), 10**6)
    assert img.size == (10, 30)  # shown upright: 10 wide, 30 high
    upright = images.to_array(img, (30, 10), "grayscale", "stretch", False)[..., 0]
    assert upright[:12].mean() > 230 and upright[18:].mean() < 25  # the white half is now on top
    info = images.inspect(buf.read_bytes(), 10**6)
    assert (info.width, info.height) == (10, 30)


def test_resize_policies_and_invert():
    wide = Image.new("L", (40, 20), 200)
    stretch = images.to_array(wide, (10, 10), "grayscale", "stretch", False)
    pad = images.to_array(wide, (10, 10), "grayscale", "pad", False)
    crop = images.to_array(wide, (10, 10), "grayscale", "crop", False)
    assert stretch.shape == pad.shape == crop.shape == (10, 10, 1)
    assert (stretch == 200).all() and (crop == 200).all()
    assert (pad[0] == 0).all() and (pad[5] == 200).all()  # letterboxed: black bands top and bottom
    inverted = images.to_array(wide, (10, 10), "grayscale", "stretch", True)
    assert (inverted == 55).all()
    rgb = images.to_array(wide, (8, 12), "rgb", "stretch", False)
    assert rgb.shape == (8, 12, 3)


def test_loader_batches_shuffle_and_augment_deterministically(prepared):
    from imageclf.cache import loader

    project, _ = prepared
    prepared_dir = project.path / "data/prepared"
    pixels, labels = load_split(prepared_dir, "val")
    x, y = next(iter(loader.dataset(prepared_dir, "val", batch_size=100)))
    assert x.shape == (len(labels), 16, 20, 3) and x.dtype.name == "float32"
    np.testing.assert_allclose(x.numpy(), np.asarray(pixels) / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), labels)

    def epoch(**kw):
        ds = loader.dataset(prepared_dir, "train", batch_size=4, shuffle=True, seed=3, cache=False, **kw)
        return [(b[0].numpy(), b[1].numpy()) for b in ds]

    plain_a, plain_b = epoch(), epoch()
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(plain_a, plain_b, strict=True))
    train_labels = load_split(prepared_dir, "train")[1]
    assert sorted(np.concatenate([b[1] for b in plain_a]).tolist()) == sorted(train_labels.tolist())
    for level in (2, 3):
        aug_a, aug_b = epoch(augment=level), epoch(augment=level)
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(aug_a, aug_b, strict=True))
        assert not all(np.array_equal(a[0], b[0]) for a, b in zip(aug_a, plain_a, strict=True))
        assert min(b[0].min() for b in aug_a) >= 0.0 and max(b[0].max() for b in aug_a) <= 1.0


def test_dihedral_level_draws_every_rotation_and_mirror_of_a_square():
    from imageclf.cache.augment import augmenter

    def drawn(image: np.ndarray) -> Counter:
        batch = np.repeat(image[None, :, :, None], 400, axis=0).astype("float32")
        out = np.asarray(augmenter(3, seed=0)(batch, training=True))
        assert out.shape == batch.shape
        return Counter(view[:, :, 0].tobytes() for view in out)

    def views(image: np.ndarray, turns: tuple[int, ...]) -> set[bytes]:
        rotated = [np.rot90(image, k) for k in turns]
        return {np.ascontiguousarray(v, dtype="float32").tobytes() for r in rotated for v in (r, r[:, ::-1])}

    square = np.arange(9).reshape(3, 3)  # distinct pixels: its 8 views all differ
    counts = drawn(square)
    assert set(counts) == views(square, (0, 1, 2, 3))
    assert min(counts.values()) > 400 / 8 / 2  # each about equally likely
    wide = np.arange(6).reshape(2, 3)  # a quarter turn would change its shape: half turns and mirrors only
    assert set(drawn(wide)) == views(wide, (0, 2))


def test_every_augmentation_level_params_accept_builds():
    from imageclf.cache import settings as prepare_settings
    from imageclf.cache.augment import augmenter
    from imageclf.cache.augment_levels import LEVELS, NAMES
    from imageclf.train import settings as train_settings

    levels = tuple(LEVELS)
    assert set(levels) == set(NAMES)  # every level has a name in the docs table
    field = train_settings.PARAMS.fields["augment"]
    assert all(field.problem(v) is None for v in (*levels, "auto")) and field.problem(len(levels)) is not None
    assert prepare_settings.PARAMS.fields["offline_augment_level"].choices == levels[1:]  # 0 would copy as is
    batch = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    for level in levels[1:]:  # level 0 is no augmenter at all
        assert augmenter(level, 0)(batch, training=True).shape == batch.shape


@pytest.mark.parametrize("storage", ["raw", "png"])
def test_empty_split_is_a_clear_error(project, tmp_path, storage):
    from imageclf.cache import loader
    from imageclf.core.errors import UserError

    root = make_folder_tree(tmp_path / "tree", {"a": 4, "b": 4})
    project.params["data"].update(source="folder", path=str(root))
    project.params["split"]["fractions"] = {"train": 0.75, "val": 0.25, "test": 0.0}
    project.params["evaluate"]["split"] = "val"
    project.params["prepare"].update(image_size=8, storage=storage)
    project.run("download", "split", "prepare")
    cache = project.path / "data/prepared"
    assert json.loads((cache / "meta.json").read_text())["splits"]["test"] == {"count": 0, "shards": []}
    assert not (project.path / "data/prepared.partial").exists()  # the finished run leaves no resume state
    images, labels = load_split(cache, "test")
    assert images.shape == (0, 8, 8, 1) and len(labels) == 0 and np.asarray(images).shape == (0, 8, 8, 1)
    with pytest.raises(UserError, match="the test split is empty"):
        loader.dataset(cache, "test", batch_size=2)


def test_epoch_k_is_the_same_when_a_run_resumes_there(prepared):
    from imageclf.cache import loader

    project, _ = prepared
    prepared_dir = project.path / "data/prepared"
    steps = -(-len(load_split(prepared_dir, "train")[1]) // 4)

    def batches(first):
        ds = loader.dataset(prepared_dir, "train", 4, shuffle=True, augment=2, oversample=True, seed=0,
                            epochs=(first, 3))
        return [(x.numpy(), y.numpy()) for x, y in ds.take(steps * (3 - first))]

    straight, resumed = batches(0), batches(2)
    assert len(resumed) == steps
    for (xa, ya), (xb, yb) in zip(straight[2 * steps:], resumed, strict=True):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(straight[0][0], straight[steps][0])  # epochs differ from each other


def test_a_split_is_read_on_demand_across_shards(tmp_path):
    """load_split holds the labels, not the pixels: a slice, an index array or a mask reads just those images, from
    whichever shards hold them."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3000, 32, 32, 3), dtype=np.uint8)  # 9 MB of pixels in 1 MB shards
    writer = ShardWriter(tmp_path, "train", (32, 32, 3), 2**20)
    for i, image in enumerate(pixels):
        writer.write(i % 7, image.tobytes())
    (tmp_path / "meta.json").write_text(json.dumps({"shape": [32, 32, 3], "splits": {"train": writer.close()}}))
    del writer
    tracemalloc.start()
    images, labels = load_split(tmp_path, "train")
    held = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert held < pixels.nbytes / 20 and len(images) == 3000 and images.shape == pixels.shape
    assert np.array_equal(labels, np.arange(3000) % 7)
    picks = np.array([2999, 0, 340, 341, 1700, 5])
    assert np.array_equal(images[picks], pixels[picks]) and np.array_equal(images[-1], pixels[-1])
    assert np.array_equal(images[330:2100:7], pixels[330:2100:7])
    assert np.array_equal(images[labels == 3], pixels[labels == 3])
    assert np.array_equal(np.asarray(images), pixels) and np.array_equal(np.stack(list(images)), pixels)


def _resident_mb() -> float:
    """This process's resident memory, file pages included (what peak RSS counts)."""
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024


def test_reading_a_whole_split_keeps_none_of_it_resident(tmp_path):
    """Its labels, then every image: the shards' pages leave the process once read (they stay in the page cache), so
    resident memory grows by far less than the split's 49 MB."""
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8).tobytes()
    writer = ShardWriter(tmp_path, "train", (64, 64, 3), 16 * 2**20)
    for i in range(4000):
        writer.write(i % 5, image)
    (tmp_path / "meta.json").write_text(json.dumps({"shape": [64, 64, 3], "splits": {"train": writer.close()}}))
    before = _resident_mb()
    images, labels = load_split(tmp_path, "train")
    assert np.bincount(labels).tolist() == [800] * 5
    assert sum(int(images[at:at + 100][:, 0, 0, 0].sum()) for at in range(0, 4000, 100)) == 4000 * image[0]
    assert _resident_mb() - before < 8


def test_a_shuffle_holds_at_most_shuffle_bytes_of_records(tmp_path, monkeypatch):
    """Big images: the shuffle buffer is bounded in bytes, not only in records. With room for 10 records, record i
    of one shard (its pixels say i) is drawn while at most 10 records wait, and every record comes out once."""
    from imageclf.cache import loader

    writer = ShardWriter(tmp_path, "train", (8, 8, 1), 2**20)
    for i in range(200):
        writer.write(i % 2, np.full(64, i, np.uint8).tobytes())
    (tmp_path / "meta.json").write_text(json.dumps({"shape": [8, 8, 1], "classes": ["a", "b"],
                                                    "splits": {"train": writer.close()}}))
    monkeypatch.setattr(loader, "SHUFFLE_BYTES", 10 * (2 + 64), raising=False)
    batches = loader.dataset(tmp_path, "train", 20, shuffle=True, epochs=(0, 1), cache=False).take(10)
    order = np.concatenate([np.round(x.numpy()[:, 0, 0, 0] * 255) for x, _ in batches]).astype(int)
    assert sorted(order) == list(range(200))
    assert all(i < at + 10 for at, i in enumerate(order)), order  # never drawn from further than the buffer reaches
    assert list(order) != list(range(200))


def test_an_image_gone_since_download_is_listed_not_dropped(project, tmp_path):
    """A folder is read in place: an image deleted after download is a listed skip with the fix, and the rest
    prepare."""
    root = make_folder_tree(tmp_path / "tree", {"a": 6, "b": 6})
    project.params["data"].update(source="folder", path=str(root))
    project.params["prepare"].update(image_size=16, color="rgb")
    project.run("download", "split")
    gone = pd.read_csv("data/split/train.csv")["path"].iloc[0]
    (root / gone).unlink()
    project.run("prepare")
    skipped = pd.read_csv("reports/data/prepare_skipped.csv")
    assert skipped[["split", "path"]].values.tolist() == [["train", gone]]
    assert "dvc repro runs download again" in skipped["reason"].iloc[0]
    assert json.loads(Path("data/prepared/meta.json").read_text())["splits"]["train"]["count"] == \
        len(pd.read_csv("data/split/train.csv")) - 1


def test_prepare_memory_stays_flat_when_the_images_quadruple(tmp_path):
    """The prepare stage's Python memory (traced, imports excluded) is the same for 4x the images: records stream
    to the shards and the preview reads one image a class, not the split."""
    import imageclf.cache.augment  # noqa: F401  (TensorFlow: imported before tracing, it is not what grows)

    peaks = {}
    for n in (400, 1600):
        project = Project(tmp_path / f"project-{n}")
        project.path.mkdir()
        project.params["data"].update(source="folder", path=str(noise_tree(tmp_path / f"tree-{n}", n, 64, 3)))
        project.params["prepare"].update(image_size=64, color="rgb")
        project.run("download", "split")
        tracemalloc.start()
        project.run("prepare")
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    train_pixels = 1600 * 0.8 * 64 * 64 * 3  # what holding the 4x train split would take
    assert peaks[1600] < 1.25 * peaks[400] and peaks[1600] - peaks[400] < train_pixels / 10, peaks


class _Cut(Exception):
    """Stands for a kill: the run stops after a given number of records."""


def _run_prepare(project, cut_after: int | None = None) -> int:
    """Run prepare as dvc repro does (its output removed first), stopping after `cut_after` records; returns how
    many records it wrote."""
    shutil.rmtree(project.path / "data/prepared", ignore_errors=True)
    written, write = [0], ShardWriter.write

    def counted(self, label, pixels):
        if written[0] == cut_after:
            raise _Cut
        written[0] += 1
        write(self, label, pixels)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ShardWriter, "write", counted)
        project.run("prepare")
    return written[0]


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("cut_after, kept, line", [
    (9, 8, "prepare train: resuming an interrupted run at image 8 of 18 (shards kept: 2)"),
    (23, 22, "prepare val: resuming an interrupted run at image 4 of 9 (shards kept: 1)")], ids=["in train", "in val"])
def test_an_interrupted_prepare_resumes_after_its_full_shards_with_the_same_bytes(prepared, capsys, cut_after, kept,
                                                                                   line):
    """4 records a shard; cut in train or in val: the next run keeps the full shards (and the finished splits),
    writes only the rest, and the cache is byte for byte an uninterrupted run's."""
    project, _ = prepared
    straight = _files(project.path / "data/prepared")
    with pytest.raises(_Cut):
        _run_prepare(project, cut_after)
    capsys.readouterr()
    assert _run_prepare(project) == 36 - kept
    assert line in capsys.readouterr().out
    assert _files(project.path / "data/prepared") == straight
    assert not (project.path / "data/prepared.partial").exists()


def test_an_interrupted_prepare_is_not_resumed_under_other_params(prepared, capsys):
    project, _ = prepared
    with pytest.raises(_Cut):
        _run_prepare(project, 9)
    assert json.loads((project.path / "data/prepared.partial/resume.json").read_text())["splits"]["train"]["count"] == 8
    project.params["prepare"]["image_size"] = [16, 16]
    capsys.readouterr()
    assert _run_prepare(project) == 36 and "resuming" not in capsys.readouterr().out
    assert json.loads((project.path / "data/prepared/meta.json").read_text())["shape"] == [16, 16, 3]


@pytest.mark.parametrize("storage", ["png", "jpeg"])
def test_encoded_records_read_back_as_training_sees_them_and_resume(prepared, capsys, storage):
    """prepare.storage png / jpeg: smaller shards; the pixels PIL reads back are what tf.data feeds training (bit for
    bit: JPEG with the accurate integer DCT), png's are the raw records' own, jpeg's close to them; an interrupted run
    resumes to the same bytes."""
    from imageclf.cache import loader

    project, _ = prepared
    cache = project.path / "data/prepared"
    raw_images, raw_labels = load_split(cache, "train")
    raw_images, raw_bytes = np.asarray(raw_images), sum(p.stat().st_size for p in cache.glob("train-*"))
    project.params["prepare"]["storage"] = storage
    _run_prepare(project)
    straight = _files(cache)
    shards = sorted(cache.glob("train-*"))
    assert shards and all(p.suffix == ".tfrecord" for p in shards)
    assert sum(p.stat().st_size for p in shards) < raw_bytes
    images, labels = load_split(cache, "train")
    assert np.array_equal(labels, raw_labels)
    gap = np.abs(np.asarray(images).astype(int) - raw_images)
    assert gap.max() == 0 if storage == "png" else 0 < gap.mean() < 4
    x, y = next(iter(loader.dataset(cache, "train", batch_size=100)))
    np.testing.assert_array_equal(np.round(x.numpy() * 255).astype(np.uint8), np.asarray(images))
    np.testing.assert_array_equal(y.numpy(), labels)
    drawn = loader.dataset(cache, "train", 6, shuffle=True, oversample=True, epochs=(0, 1), cache=False).take(3)
    assert set(np.concatenate([batch[1].numpy() for batch in drawn]).tolist()) == {0, 1, 2}  # labels read per record
    with pytest.raises(_Cut):
        _run_prepare(project, 9)
    capsys.readouterr()
    assert _run_prepare(project) < 36 and "resuming an interrupted run" in capsys.readouterr().out
    assert _files(cache) == straight
