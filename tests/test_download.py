"""download stage: every source layout, label extraction, and bad input reported (never silently dropped)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_csv_tree, make_fashion_idx, make_folder_tree, make_lego_tree, pattern_image

from imageclf.core.errors import UserError
from imageclf.data import fashion_mnist, ingest, sources


def read_outputs(project) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    manifest = pd.read_csv(project.path / "data/raw/manifest.csv", keep_default_na=False)
    skipped = pd.read_csv(project.path / "reports/data/skipped.csv", keep_default_na=False)
    summary = json.loads((project.path / "reports/data/download.json").read_text())
    return manifest, skipped, summary


def use_folder(project, root: Path, labels: str = "folder", **extra) -> None:
    project.params["data"].update(source="folder", path=str(root), labels=labels, **extra)


def test_folder_per_class_with_unicode_and_spaces(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"daisy": 4, "rosé rouge": 4, "日本": 4})
    use_folder(project, root)
    project.run("download")
    manifest, skipped, summary = read_outputs(project)
    assert summary["images"] == 12 and summary["classes"] == 3 and summary["skipped"] == 0
    assert sorted(manifest["class_name"].unique()) == ["daisy", "rosé rouge", "日本"]
    assert list(manifest.columns[:9]) == ["path", "label", "class_name", "id", "width", "height", "grey", "hash",
                                          "official_split"]
    # read in place: no copy of the tree, its folder named once
    assert sorted(p.name for p in (project.path / "data/raw").iterdir()) == ["manifest.csv", "split_lists.json",
                                                                             "tree.json"]
    raw = ingest.RawImages(project.path / "data/raw")
    assert raw.read("rosé rouge/img 000.png") == (root / "rosé rouge/img 000.png").read_bytes()
    assert (manifest["width"] == 24).all() and manifest["hash"].str.len().eq(64).all()


def test_lego_regex_labels_and_shipped_validation_list(project, tmp_path):
    root = make_lego_tree(tmp_path / "lego", {"3003": "brick 2x2", "3004": "brick 1x2"}, per_class=5, validation=2)
    use_folder(project, root, labels="regex",
               filename_regex=r"(?P<label>\d+) (?P<name>.+) (?P<id>\d{3}[LR])\.png")
    project.run("download")
    manifest, skipped, _ = read_outputs(project)
    row = manifest[manifest["path"] == "3003 brick 2x2 000L.png"].iloc[0]
    assert (row["class_name"], row["id"]) == ("3003 brick 2x2", "000L")
    lists = json.loads((project.path / "data/raw/split_lists.json").read_text())
    assert sorted(lists["val"]) == sorted(p for p in manifest["path"] if p.endswith(("000L.png", "001R.png")))
    assert skipped.empty  # validation.txt is a split list, not an image


def test_csv_annotations(project, tmp_path):
    root = make_csv_tree(tmp_path / "csvtree", ["cat", "dog"], per_class=3)
    use_folder(project, root, labels="csv", labels_csv="labels.csv")
    project.run("download")
    manifest, _, summary = read_outputs(project)
    assert summary["images"] == 6
    assert dict(zip(manifest["path"], manifest["class_name"], strict=True))["imgs/dog_2.jpg"] == "dog"


def test_images_the_labels_do_not_cover_are_skipped_and_listed(project, tmp_path):
    """docs/bad-input.md: an image missing from labels.csv, or whose name the regex does not match, is a listed
    skip, never a silent drop and never an error."""
    root = make_csv_tree(tmp_path / "csvtree", ["cat", "dog"], per_class=3)
    pattern_image(0, 7).save(root / "imgs/stray.jpg")
    use_folder(project, root, labels="csv", labels_csv="labels.csv")
    project.run("download")
    manifest, skipped, summary = read_outputs(project)
    assert skipped.values.tolist() == [["imgs/stray.jpg", "not listed in labels.csv"]]
    assert summary["images"] == 6 and "imgs/stray.jpg" not in set(manifest["path"])

    lego = make_lego_tree(tmp_path / "lego", {"3003": "brick 2x2", "3004": "brick 1x2"}, per_class=4, validation=1)
    pattern_image(1, 7).save(lego / "photo of my desk.png")
    use_folder(project, lego, labels="regex", filename_regex=r"(?P<label>\d+) (?P<name>.+) (?P<id>\d{3}[LR])\.png")
    project.run("download")
    manifest, skipped, summary = read_outputs(project)
    assert skipped.values.tolist() == [["photo of my desk.png", "file name does not match data.filename_regex"]]
    assert summary["images"] == 8 and summary["skipped"] == 1


def test_csv_entry_for_missing_file_is_an_error(project, tmp_path):
    root = make_csv_tree(tmp_path / "csvtree", ["cat", "dog"], per_class=3)
    (root / "labels.csv").write_text((root / "labels.csv").read_text() + "imgs/ghost.jpg,cat\n")
    use_folder(project, root, labels="csv", labels_csv="labels.csv")
    with pytest.raises(UserError, match=r"line 8: 'imgs/ghost.jpg' does not exist"):
        project.run("download")


def test_bad_files_are_skipped_with_reasons(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 3, "b": 3})
    (root / "a" / "empty.png").write_bytes(b"")
    good = (root / "a" / "img 000.png").read_bytes()
    (root / "a" / "truncated.png").write_bytes(good[: len(good) // 2])
    pattern_image(0, 9, 64).save(root / "b" / "cut.jpg")
    (root / "b" / "cut.jpg").write_bytes((root / "b" / "cut.jpg").read_bytes()[:300])
    (root / "b" / "notes.jpg").write_text("this is not a picture")
    (root / "b" / "readme.txt").write_text("hello")
    pattern_image(1, 9, 200).save(root / "b" / "huge.png")
    (root / "loose.png").write_bytes(good)
    use_folder(project, root, max_image_pixels=10_000)
    project.run("download")
    manifest, skipped, summary = read_outputs(project)
    reasons = dict(zip(skipped["path"], skipped["reason"], strict=True))
    assert reasons["a/empty.png"] == "empty file (0 bytes)"
    assert reasons["a/truncated.png"].startswith("truncated or corrupt image")
    assert reasons["b/cut.jpg"].startswith("truncated or corrupt image")
    assert reasons["b/notes.jpg"].startswith("not a readable image")
    assert reasons["b/readme.txt"] == "not an image file extension"
    assert reasons["b/huge.png"].startswith("image too large")
    assert reasons["loose.png"].startswith("not inside a class folder")
    assert summary == {**summary, "images": 6, "skipped": 7}
    assert not set(reasons) & set(manifest["path"])


def test_unusual_modes_are_kept(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 2, "b": 2})
    base = pattern_image(0, 5)
    base.convert("CMYK").save(root / "a" / "cmyk.jpg")
    Image16 = np.asarray(base.convert("L"), dtype=np.uint16) * 257
    from PIL import Image

    Image.fromarray(Image16).save(root / "a" / "deep.png")
    base.convert("P").save(root / "b" / "palette.png")
    base.convert("RGBA").save(root / "b" / "alpha.png")
    use_folder(project, root)
    project.run("download")
    manifest, skipped, _ = read_outputs(project)
    assert skipped.empty
    assert {"a/cmyk.jpg", "a/deep.png", "b/palette.png", "b/alpha.png"} <= set(manifest["path"])


def test_empty_class_folder_is_an_error(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 3, "b": 3})
    (root / "c").mkdir()
    use_folder(project, root)
    with pytest.raises(UserError, match="class folder 'c' holds no usable image"):
        project.run("download")


def test_class_below_min_count_stops(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 5, "b": 1})
    use_folder(project, root, min_per_class=2)
    with pytest.raises(UserError, match=r"class 'b' has 1 usable images, fewer than data.min_per_class=2"):
        project.run("download")


def test_duplicates_are_reported(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 3, "b": 3})
    (root / "b" / "copy of a.png").write_bytes((root / "a" / "img 000.png").read_bytes())
    use_folder(project, root)
    project.run("download")
    _, _, summary = read_outputs(project)
    dups = pd.read_csv(project.path / "reports/data/duplicates.csv")
    assert set(dups["path"]) == {"a/img 000.png", "b/copy of a.png"}
    assert summary["duplicate_groups"] == 1 and summary["conflicting_duplicates"] == 1
    assert summary["conflicts_dropped"] == 2 and summary["images"] == 5  # 7 files; data.conflicts: drop


def test_fashion_mnist_from_local_idx(project, tmp_path, monkeypatch):
    table = make_fashion_idx(tmp_path / "fmnist", n_train=30, n_test=10)
    monkeypatch.setattr(fashion_mnist, "FILES", table)
    project.params["data"].update(source="fashion-mnist", path=str(tmp_path / "fmnist"))
    project.run("download")
    manifest, _, summary = read_outputs(project)
    assert summary["images"] == 40 and summary["classes"] == 10
    assert manifest["official_split"].value_counts().to_dict() == {"train": 30, "test": 10}
    shirt = manifest[manifest["class_name"] == "T-shirt/top"]
    assert (shirt["label"] == 0).all() and shirt["path"].str.contains("T-shirt_top/").all()
    # pixels that exist only as arrays are packed once, as PNGs in one zip
    assert not (project.path / "data/raw/tree.json").exists()
    with zipfile.ZipFile(project.path / "data/raw/images.zip") as zf:
        assert sorted(zf.namelist()) == sorted(manifest["path"])


def test_fashion_mnist_checksum_mismatch(project, tmp_path):
    make_fashion_idx(tmp_path / "fmnist")  # real checksum table: the generated files do not match it
    project.params["data"].update(source="fashion-mnist", path=str(tmp_path / "fmnist"))
    with pytest.raises(UserError, match="checksum mismatch"):
        project.run("download")


def test_fashion_mnist_missing_and_offline_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "BASE_URL", "http://127.0.0.1:9/")  # nothing listens there
    with pytest.raises(UserError, match="dataset-fashion-mnist"):
        fashion_mnist.load(tmp_path / "nothing")


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").exists(),
                    reason="Debian package dataset-fashion-mnist not installed (make test installs it)")
def test_debian_fashion_mnist_files_pass_the_checksums():
    data = fashion_mnist.load(Path("/usr/share/datasets/fashion-mnist"), allow_download=False)
    assert data["train"][0].shape == (60000, 28, 28) and data["test"][0].shape == (10000, 28, 28)
    assert np.bincount(data["test"][1]).tolist() == [1000] * 10


def test_elpv_source_reads_the_package_labels():
    collection = sources.collect({"source": "elpv"})
    assert len(collection.items) == 2624 and not collection.skipped
    counts = pd.Series([i.class_key for i in collection.items]).value_counts().to_dict()
    assert set(counts) == {"0.00", "0.33", "0.67", "1.00"} and counts["0.00"] > counts["0.67"]  # imbalanced
    assert {i.extra["cell_type"] for i in collection.items} == {"mono", "poly"}
    assert Path(collection.items[0].origin).exists()


ELPV_KEYS = ("0.00", "0.33", "0.67", "1.00")


def test_elpv_subset_through_download(project, monkeypatch):
    real = sources.SOURCES["elpv"]

    def subset(data):
        full = real(data)
        keep = [i for key in ELPV_KEYS for i in [x for x in full.items if x.class_key == key][:3]]
        return sources.Collection(keep, full.skipped, {}, full.class_order)

    monkeypatch.setitem(sources.SOURCES, "elpv", subset)
    project.params["data"].update(source="elpv", path=".")
    project.run("download")
    manifest, _, _ = read_outputs(project)
    assert len(manifest) == 12 and set(manifest["cell_type"]) <= {"mono", "poly"}
    assert (manifest["width"] == 300).all()


def test_kaggle_without_credentials_explains_setup(tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    with pytest.raises(UserError, match=r"Kaggle credentials: create an API token .*/kaggle.json"):
        sources.collect({"source": "kaggle", "kaggle_dataset": "joosthazelzet/lego-brick-images", "path": "x"})


@pytest.mark.parametrize(("policy", "kept"), [("drop", []), ("keep_first", ["a/same.png"]),
                                              ("keep", ["a/same.png", "b/same.png"])])
def test_label_conflicts_are_listed_and_never_silently_trained_on(project, tmp_path, policy, kept):
    root = make_folder_tree(tmp_path / "tree", {"a": 3, "b": 3})
    pattern_image(5, 99).save(root / "a" / "same.png")  # the same picture under two classes
    pattern_image(5, 99).save(root / "b" / "same.png")
    project.params["data"].update(source="folder", path=str(root), conflicts=policy)
    project.run("download")
    conflicts = pd.read_csv(project.path / "reports/data/conflicts.csv")
    assert conflicts["path"].tolist() == ["a/same.png", "b/same.png"]
    assert conflicts.loc[conflicts["kept"], "path"].tolist() == kept
    manifest = pd.read_csv(project.path / "data/raw/manifest.csv")
    assert sorted(p for p in manifest["path"] if p.endswith("same.png")) == kept
    summary = json.loads((project.path / "reports/data/download.json").read_text())
    assert summary["conflicting_duplicates"] == 1 and summary["conflicts_dropped"] == 2 - len(kept)


def test_no_conflict_gives_an_empty_list(project, tmp_path):
    project.params["data"].update(source="folder", path=str(make_folder_tree(tmp_path / "tree", {"a": 3, "b": 3})))
    project.run("download")
    assert (project.path / "reports/data/conflicts.csv").read_text() == "hash,path,class_name,kept\n"
