"""split stage: stratified fractions, official test set, shipped lists, subsets, leakage."""

from __future__ import annotations

import json
import tracemalloc

import pandas as pd
import pytest
from conftest import Project, make_fashion_idx, make_folder_tree, make_lego_tree, noise_tree

from imageclf.core.errors import UserError
from imageclf.data import fashion_mnist, ingest, plots


def splits(project) -> dict[str, pd.DataFrame]:
    return {s: pd.read_csv(project.path / f"data/split/{s}.csv", keep_default_na=False)
            for s in ("train", "val", "test")}


def test_stratified_fractions_and_outputs(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 20, "b": 10, "c": 10})
    project.params["data"].update(source="folder", path=str(root))
    project.params["split"]["fractions"] = {"train": 0.7, "val": 0.2, "test": 0.1}
    project.run("download", "split")
    out = splits(project)
    per_class = {s: f["class_name"].value_counts().to_dict() for s, f in out.items()}
    assert per_class == {"train": {"a": 14, "b": 7, "c": 7}, "val": {"a": 4, "b": 2, "c": 2},
                         "test": {"a": 2, "b": 1, "c": 1}}
    for frame in out.values():
        assert list(frame["path"]) == sorted(frame["path"])
    counts = json.loads((project.path / "reports/data/class_counts.json").read_text())
    assert counts["train"] == {"total": 28, "a": 14, "b": 7, "c": 7}
    assert json.loads((project.path / "data/split/classes.json").read_text()) == {"classes": ["a", "b", "c"]}
    for name in ("train", "val", "test"):
        assert (project.path / f"reports/data/class_counts_{name}.png").stat().st_size > 1000


def test_same_seed_same_lists_other_seed_differs(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 20, "b": 20})
    project.params["data"].update(source="folder", path=str(root))
    project.run("download", "split")
    first = (project.path / "data/split/val.csv").read_bytes()
    project.run("split")
    assert (project.path / "data/split/val.csv").read_bytes() == first
    project.params["split"]["seed"] = 7
    project.run("split")
    assert (project.path / "data/split/val.csv").read_bytes() != first


def test_official_test_set_is_kept(project, tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "FILES", make_fashion_idx(tmp_path / "f", n_train=50, n_test=20))
    project.params["data"].update(source="fashion-mnist", path=str(tmp_path / "f"))
    project.params["split"]["fractions"] = {"train": 0.8, "val": 0.2, "test": 0.0}
    project.run("download", "split")
    out = splits(project)
    assert len(out["test"]) == 20 and out["test"]["path"].str.startswith("test/").all()
    assert len(out["train"]) == 40 and len(out["val"]) == 10
    assert not out["train"]["path"].str.startswith("test/").any()


def test_lego_validation_list_is_used_exactly(project, tmp_path):
    root = make_lego_tree(tmp_path / "lego", {"3003": "brick 2x2", "3004": "brick 1x2"}, per_class=6, validation=2)
    project.params["data"].update(source="folder", path=str(root), labels="regex",
                                  filename_regex=r"(?P<label>\d+) (?P<name>.+) (?P<id>\d{3}[LR])\.png")
    project.run("download", "split")
    out = splits(project)
    listed = (root / "validation.txt").read_text().split("\n")
    assert sorted(out["val"]["path"]) == sorted(n for n in listed if n)
    # no test.txt: test is carved from the unlisted images, stratified (at least one per class)
    assert out["test"]["class_name"].value_counts().to_dict() == {"3003 brick 2x2": 1, "3004 brick 1x2": 1}
    assert not set(out["test"]["path"]) & set(listed) and len(out["train"]) == 6


def test_shipped_test_list_is_kept_and_val_is_carved_from_the_rest(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 12, "b": 12})
    (root / "test.txt").write_text("a/img 000.png\nb/img 000.png\nb/img 001.png\n")
    project.params["data"].update(source="folder", path=str(root))
    project.params["split"]["fractions"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    project.run("download", "split")
    out = splits(project)
    assert sorted(out["test"]["path"]) == ["a/img 000.png", "b/img 000.png", "b/img 001.png"]
    # val takes 0.2 / (0.6 + 0.2) of what is not listed: a 11 -> 3, b 10 -> 2 (rounded, per class)
    assert out["val"]["class_name"].value_counts().to_dict() == {"a": 3, "b": 2}
    assert len(out["train"]) == 24 - 3 - 5


def test_a_train_list_leaves_unlisted_images_out_and_lists_them(project, tmp_path):
    """docs/datasets.md, split rule 1: with train.txt (and val.txt spelled so; bare file names allowed) every
    unlisted image is left out of every split and listed in reports/data/split_excluded.csv."""
    root = make_folder_tree(tmp_path / "tree", {"a": 6, "b": 6})
    (root / "train.txt").write_text("".join(f"{c}/img {i:03d}.png\n" for c in "ab" for i in range(3)))
    (root / "val.txt").write_text("a/img 003.png\nb/img 003.png\n")
    (root / "test.txt").write_text("a/img 004.png\nb/img 004.png\n")
    project.params["data"].update(source="folder", path=str(root))
    project.run("download", "split")
    out = splits(project)
    assert sorted(out["train"]["path"]) == [f"{c}/img {i:03d}.png" for c in "ab" for i in range(3)]
    assert sorted(out["val"]["path"]) == ["a/img 003.png", "b/img 003.png"]
    assert sorted(out["test"]["path"]) == ["a/img 004.png", "b/img 004.png"]
    excluded = pd.read_csv(project.path / "reports/data/split_excluded.csv")
    assert excluded["path"].tolist() == ["a/img 005.png", "b/img 005.png"]
    assert set(excluded["reason"]) == {"in no shipped split list"}
    assert json.loads((project.path / "reports/data/class_counts.json").read_text())["excluded"] == 2


def test_default_fractions_give_every_tree_source_a_test_split(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 10, "b": 10})
    project.params["data"].update(source="folder", path=str(root))
    project.run("download", "split")
    out = splits(project)
    assert {s: len(f) for s, f in out.items()} == {"train": 16, "val": 2, "test": 2}


@pytest.mark.parametrize(("fractions", "evaluate_split", "message"), [
    ({"train": 0.8, "val": 0.2, "test": 0.0}, "test", r"evaluate.split is 'test' but that split is empty"),
    ({"train": 0.8, "val": 0.0, "test": 0.2}, "test", r"the val split is empty, but training needs it"),
])
def test_an_unusable_split_stops_the_split_stage_before_training(project, tmp_path, fractions, evaluate_split,
                                                                  message):
    root = make_folder_tree(tmp_path / "tree", {"a": 10, "b": 10})
    project.params["data"].update(source="folder", path=str(root))
    project.params["split"]["fractions"] = fractions
    project.params["evaluate"]["split"] = evaluate_split
    with pytest.raises(UserError, match=message):
        project.run("download", "split")


def test_evaluating_on_val_needs_no_test_split(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 10, "b": 10})
    project.params["data"].update(source="folder", path=str(root))
    project.params["split"]["fractions"] = {"train": 0.8, "val": 0.2, "test": 0.0}
    project.params["evaluate"]["split"] = "val"
    project.run("download", "split")
    assert splits(project)["test"].empty


def test_list_entry_for_a_missing_file_is_an_error(project, tmp_path):
    root = make_lego_tree(tmp_path / "lego", {"3003": "brick 2x2", "3004": "brick 1x2"}, per_class=4, validation=1)
    with open(root / "validation.txt", "a") as fh:
        fh.write("3003 brick 2x2 999L.png\n")
    project.params["data"].update(source="folder", path=str(root), labels="regex",
                                  filename_regex=r"(?P<label>\d+) (?P<name>.+) (?P<id>\d{3}[LR])\.png")
    with pytest.raises(UserError, match=r"val split list: '3003 brick 2x2 999L.png' is not an image of the dataset"):
        project.run("download", "split")


def test_class_too_small_for_the_split(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 10, "b": 2})
    project.params["data"].update(source="folder", path=str(root))
    project.params["split"]["fractions"] = {"train": 0.7, "val": 0.2, "test": 0.1}
    with pytest.raises(UserError, match=r"class 'b' has 2 images but split.fractions needs at least 3"):
        project.run("download", "split")


def test_nothing_leaks_gives_an_empty_leakage_report_with_its_header(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 10, "b": 10})
    project.params["data"].update(source="folder", path=str(root))
    project.run("download", "split")
    assert (project.path / "reports/data/leakage.csv").read_text() == "hash,split,path\n"
    assert json.loads((project.path / "reports/data/class_counts.json").read_text())["leaked"] == 0


def test_max_per_class_subset(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 30, "b": 30})
    project.params["data"].update(source="folder", path=str(root), max_per_class=8)
    project.params["split"]["fractions"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    project.run("download", "split")
    out = splits(project)
    assert out["train"]["class_name"].value_counts().to_dict() == {"a": 8, "b": 8}
    assert out["val"]["class_name"].value_counts().to_dict() == {"a": 3, "b": 3}  # 6 of 18 -> 8 * 6 / 18


@pytest.mark.parametrize("drop", [True, False])
def test_leakage_is_reported_and_optionally_dropped(project, tmp_path, drop):
    root = make_folder_tree(tmp_path / "tree", {"a": 10, "b": 10})
    for i in range(10):  # every 'b' image gets a byte-identical twin: some twins land in different splits
        (root / "b" / f"twin {i}.png").write_bytes((root / "b" / f"img {i:03d}.png").read_bytes())
    project.params["data"].update(source="folder", path=str(root))
    project.params["split"]["drop_leaked"] = drop
    project.run("download", "split")
    leakage = pd.read_csv(project.path / "reports/data/leakage.csv")
    assert len(leakage) > 0 and (leakage.groupby("hash")["split"].nunique() > 1).all()
    out = splits(project)
    seen: dict[str, set] = {}
    for name, frame in out.items():
        for digest in frame["hash"]:
            seen.setdefault(digest, set()).add(name)
    shared = {h for h, names in seen.items() if len(names) > 1}
    counts = json.loads((project.path / "reports/data/class_counts.json").read_text())
    assert counts["leaked"] == leakage["hash"].nunique()
    excluded = pd.read_csv(project.path / "reports/data/split_excluded.csv")
    if drop:
        assert not shared and len(excluded) == len(leakage) - counts["leaked"]  # one copy per group stays
        first = leakage.assign(rank=leakage["split"].map({"train": 0, "val": 1, "test": 2}))
        kept = first.loc[first.groupby("hash")["rank"].idxmin(), "path"]
        assert not set(excluded["path"]) & set(kept)
    else:
        assert len(shared) == counts["leaked"] and excluded.empty


def test_download_and_split_memory_stays_flat_when_the_images_quadruple(tmp_path, monkeypatch):
    """The traced peak of the download and split stages, 2,000 then 8,000 images: rows stream through files and what
    stays in memory is a few compact arrays, not a table of strings (which grew ~0.7 KB an image). Two constants
    that would hide the rest at this size are set aside: the worker pool's read-ahead (made small) and matplotlib's
    caches (the class-count charts are not drawn)."""
    monkeypatch.setattr(ingest, "BLOCK", 64)
    monkeypatch.setattr(plots, "class_counts", lambda *args: None)
    peaks = {}
    for n in (100, 2000, 8000):  # the first run imports what the stages import lazily; it is not measured
        project = Project(tmp_path / f"project-{n}")
        project.path.mkdir()
        project.params["data"].update(source="folder", path=str(noise_tree(tmp_path / f"tree-{n}", n, 8, 1)))
        for stage in ("download", "split"):
            tracemalloc.start()
            project.run(stage)
            peaks[stage, n] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    for stage in ("download", "split"):
        assert peaks[stage, 8000] < 1.5 * peaks[stage, 2000], (stage, peaks)
