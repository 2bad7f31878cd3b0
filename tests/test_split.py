"""split stage: stratified fractions, official test set, shipped lists, subsets, leakage."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import make_fashion_idx, make_folder_tree, make_lego_tree

from imageclf import fashion_mnist
from imageclf.errors import UserError


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
    assert len(out["train"]) == 8 and len(out["test"]) == 0


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


def test_max_per_class_subset(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", {"a": 30, "b": 30})
    project.params["data"].update(source="folder", path=str(root), max_per_class=8)
    project.run("download", "split")
    out = splits(project)
    assert out["train"]["class_name"].value_counts().to_dict() == {"a": 8, "b": 8}
    assert out["val"]["class_name"].value_counts().to_dict() == {"a": 2, "b": 2}


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
    shared = set(out["train"]["hash"]) & set(out["val"]["hash"])
    counts = json.loads((project.path / "reports/data/class_counts.json").read_text())
    assert counts["leaked"] == leakage["hash"].nunique()
    excluded = pd.read_csv(project.path / "reports/data/split_excluded.csv")
    if drop:
        assert not shared and len(excluded) == counts["leaked"]
        assert set(excluded["path"]) <= set(leakage[leakage["split"] == "val"]["path"])
    else:
        assert len(shared) == counts["leaked"] and excluded.empty
