"""The data audit stage on generated trees: planted label errors found with the label they should have, planted
image issues found, a clean tree gives empty reports, split.exclude leaves reviewed images out (and lists them)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import make_folder_tree, pattern_image
from PIL import Image

from imageclf.core.errors import UserError
from imageclf.data import audit
from imageclf.report import comparison

CLASSES = {"a": 20, "b": 20, "c": 20}


def audited(project, root) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    project.params["data"].update(source="folder", path=str(root))
    project.params["prepare"]["image_size"] = 16
    project.params["audit"].update(labels=True, images=True, features="lite0")
    project.params["features"] = {"lite0": {"backbone": "efficientnet_lite0", "weights": "imagenet",
                                            "input_size": 48, "pooling": "avg"}}
    project.params["models"] = {"scratch": [], "transfer": []}
    project.run("download", "split", "prepare", "features", "audit")
    out = project.path / "reports/audit"
    return (pd.read_csv(out / "label_issues.csv", keep_default_na=False),
            pd.read_csv(out / "image_issues.csv", keep_default_na=False),
            json.loads((out / "summary.json").read_text()))


def test_planted_label_errors_and_image_issues_are_found(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", CLASSES)
    for i in range(3):  # class a's pictures filed under b
        pattern_image(0, 100 + i).save(root / "b" / f"planted {i}.png")
    pattern_image(2, 200).resize((24, 96)).save(root / "c" / "tall.png")  # an odd aspect ratio
    pattern_image(1, 3).save(root / "b" / "again.png")  # an exact duplicate of b/img 003.png
    labels, images, facts = audited(project, root)
    planted = labels[labels["path"].str.startswith("b/planted")]
    assert sorted(planted["path"]) == [f"b/planted {i}.png" for i in range(3)], labels
    assert set(planted["given"]) == {"b"} and set(planted["suggested"]) == {"a"}
    assert len(labels) <= 6  # the planted three, and few false alarms on 63 images
    assert labels["label_quality"].is_monotonic_increasing  # worst first
    assert ("c/tall.png", "odd_aspect_ratio") in set(zip(images["path"], images["issue"], strict=True))
    duplicates = images.loc[images["issue"] == "exact_duplicates", "path"]
    assert sorted(duplicates) == ["b/again.png", "b/img 003.png"]
    assert facts["images"] == 65 and facts["label_issues"] == len(labels)
    assert facts["odd_aspect_ratio"] == int((images["issue"] == "odd_aspect_ratio").sum()) >= 1
    suspects = project.path / "reports/audit/suspects.png"
    assert np.asarray(Image.open(suspects).convert("L")).std() > 10
    section = comparison._audit(project.path / "reports/audit")  # the report's section: the counts, the suspects
    table = next(payload for kind, payload in section if kind == "table")
    assert dict(zip(table["issue"], table["images"], strict=True)) == {
        k.replace("_", " "): v for k, v in facts.items() if k != "images"}
    assert ("img", suspects) in section


def test_a_clean_tree_gives_empty_reports_and_no_check_run_writes_empty_files(project, tmp_path, monkeypatch,
                                                                               capsys):
    labels, images, facts = audited(project, make_folder_tree(tmp_path / "tree", CLASSES))
    assert labels.empty and list(labels.columns) == ["path", "split", "given", "suggested", "label_quality"]
    assert images.empty and list(images.columns) == ["path", "split", "issue", "score"]
    assert facts["images"] == 60 and facts["label_issues"] == 0 and not any(
        v for k, v in facts.items() if k not in ("images",))
    project.params["audit"].update(labels=False, images=False)
    project.run("audit")
    assert json.loads((project.path / "reports/audit/summary.json").read_text()) == {"images": 60}
    monkeypatch.setattr(audit, "AUTO_IMAGES", 59)  # images auto: a dataset above the limit is not checked, said so
    project.params["audit"].update(images="auto")
    project.run("audit")
    assert json.loads((project.path / "reports/audit/summary.json").read_text()) == {"images": 60}
    assert "audit: image issues not checked (60 images, more than audit.images auto checks: 59)" in \
        capsys.readouterr().out


def test_split_exclude_leaves_listed_images_out_and_lists_them(project, tmp_path):
    root = make_folder_tree(tmp_path / "tree", CLASSES)
    project.params["data"].update(source="folder", path=str(root))
    project.params["split"]["exclude"] = ["a/img 001.png", "c/img 019.png"]
    project.run("download", "split")
    kept = pd.concat([pd.read_csv(project.path / f"data/split/{s}.csv") for s in ("train", "val", "test")])
    assert len(kept) == 58 and not set(project.params["split"]["exclude"]) & set(kept["path"])
    excluded = pd.read_csv(project.path / "reports/data/split_excluded.csv")
    assert excluded.values.tolist() == [["a/img 001.png", "listed in split.exclude"],
                                        ["c/img 019.png", "listed in split.exclude"]]
    project.params["split"]["exclude"] = ["a/img 999.png"]
    with pytest.raises(UserError, match=r"^params.yaml: 'split.exclude' lists 1 path\(s\) that are no image of the "
                                        r"dataset, e.g. 'a/img 999.png'"):
        project.run("split")
