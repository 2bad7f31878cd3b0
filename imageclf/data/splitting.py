"""Assign every manifest row to train / val / test: shipped split lists, official test set, or stratified."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imageclf.core import paths
from imageclf.core.errors import UserError
from imageclf.core.params import Field, Section
from imageclf.core.paths import SPLITS
from imageclf.data import plots
from imageclf.data.ingest import read_manifest


def _fractions(value: dict) -> str | None:
    if set(value) != set(SPLITS):
        return f"must have exactly the keys train, val, test; got {sorted(value)}"
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 for v in value.values()):
        return f"values must be numbers >= 0, got {value}"
    if abs(sum(value.values()) - 1.0) > 1e-6 or value["train"] <= 0:
        return f"must sum to 1 with train > 0, got {value}"
    return None


PARAMS = Section({
    "seed": Field((int,)),
    "fractions": Field((dict,), check=_fractions),
    "drop_leaked": Field((bool,)),
    # paths left out of every split (e.g. reviewed suspects of reports/audit/label_issues.csv)
    "exclude": Field((list,), check=lambda v: None if all(isinstance(x, str) for x in v) else
                     f"must be a list of image paths, got {v!r}"),
})


@dataclass
class SplitResult:
    splits: dict[str, pd.DataFrame]
    leakage: pd.DataFrame  # hash, split, path of content that occurs in more than one split
    excluded: pd.DataFrame  # path, reason of rows left out of every split
    notes: list[str]


def split(manifest: pd.DataFrame, lists: dict[str, list[str]], fractions: dict[str, float], seed: int,
          max_per_class: int | None, drop_leaked: bool, exclude: list[str] = ()) -> SplitResult:
    """Split the manifest; see README 'Split rules'.

    Splits the dataset assigns itself (shipped lists, an official test set) are kept exactly. Every other split
    whose fraction is > 0 is carved, stratified, from the training pool in proportion to split.fractions. Images
    `exclude` lists are left out of every split first.
    """
    notes: list[str] = []
    rng = np.random.default_rng(seed)
    manifest = manifest.sort_values("path", kind="stable").reset_index(drop=True)
    unknown = sorted(set(exclude) - set(manifest["path"]))
    if unknown:
        raise UserError(f"params.yaml: 'split.exclude' lists {len(unknown)} path(s) that are no image of the dataset, "
                        f"e.g. {unknown[0]!r}; use the paths of reports/audit/label_issues.csv or reports/data/*.csv")
    dropped_by_user = manifest["path"].isin(exclude)
    left_out = pd.DataFrame({"path": manifest.loc[dropped_by_user, "path"], "reason": "listed in split.exclude"})
    manifest = manifest[~dropped_by_user].reset_index(drop=True)
    if lists:
        assignment, excluded = _from_lists(manifest, lists)
        fixed = set(lists) - {"train"}
        notes.append(f"used the split lists shipped with the dataset: {', '.join(sorted(lists))}")
    else:
        official = manifest["official_split"] == "test"
        assignment = pd.Series(np.where(official, "test", "train"), index=manifest.index)
        excluded = pd.DataFrame(columns=["path", "reason"])
        fixed = {"test"} if official.any() else set()
    ignored = sorted(s for s in fixed if fractions[s] > 0)
    if ignored:
        notes.append(f"the dataset ships its own {' and '.join(ignored)} split: split.fractions for it not used")
    carve = {s: (0.0 if s in fixed else fractions[s]) for s in SPLITS}
    carved = [s for s in SPLITS if s != "train" and carve[s] > 0]
    if carved:
        total = sum(carve.values())
        pool = manifest.index[assignment == "train"]
        assignment[pool] = _stratified(manifest.loc[pool], {s: v / total for s, v in carve.items()}, rng)
        if fixed or lists:
            notes.append(f"carved {' and '.join(carved)} from the training images, stratified, in proportion to "
                         "split.fractions")
    if max_per_class:
        assignment = _cap(manifest, assignment, max_per_class, rng)
    leakage, dropped = _leakage(manifest, assignment)
    if drop_leaked and len(dropped):
        assignment[dropped] = ""
        excluded = pd.concat([excluded, pd.DataFrame({"path": manifest.loc[dropped, "path"],
                                                      "reason": "same content as an image of an earlier split"})])
    splits = {name: manifest[assignment == name].reset_index(drop=True) for name in SPLITS}
    excluded = pd.concat([excluded, left_out]) if len(left_out) else excluded
    return SplitResult(splits, leakage, excluded.sort_values("path").reset_index(drop=True), notes)


def check_usable(splits: dict[str, pd.DataFrame], evaluate_split: str) -> None:
    """Training needs val images (early stopping) and evaluation needs images in evaluate.split: say so now."""
    if splits["val"].empty:
        raise UserError("split: the val split is empty, but training needs it (early stopping, best epoch); set "
                        "split.fractions.val > 0, or ship val.txt / validation.txt with the dataset")
    if splits[evaluate_split].empty:
        raise UserError(f"split: evaluate.split is '{evaluate_split}' but that split is empty; set "
                        f"split.fractions.{evaluate_split} > 0 (or ship {evaluate_split}.txt), or set evaluate.split "
                        "to val")


def _from_lists(manifest: pd.DataFrame, lists: dict[str, list[str]]) -> tuple[pd.Series, pd.DataFrame]:
    """Use shipped lists exactly; names may be tree paths or bare file names (LEGO's validation.txt)."""
    by_path = {p: i for i, p in enumerate(manifest["path"])}
    by_name: dict[str, list[int]] = {}
    for i, p in enumerate(manifest["path"]):
        by_name.setdefault(p.rsplit("/", 1)[-1], []).append(i)
    assignment = pd.Series("", index=manifest.index)
    for split_name in ("test", "val", "train"):
        for entry in lists.get(split_name, []):
            entry = entry.replace("\\", "/").lstrip("./")
            rows = [by_path[entry]] if entry in by_path else by_name.get(entry, [])
            if not rows:
                raise UserError(f"{split_name} split list: '{entry}' is not an image of the dataset (missing, or "
                                "skipped: see reports/data/skipped.csv); fix the list or restore the file")
            if len(rows) > 1:
                raise UserError(f"{split_name} split list: '{entry}' matches {len(rows)} files; list tree paths")
            if assignment[rows[0]] and assignment[rows[0]] != split_name:
                raise UserError(f"split lists: '{entry}' is listed in both {assignment[rows[0]]} and {split_name}")
            assignment[rows[0]] = split_name
    unlisted = assignment == ""
    if "train" not in lists:
        assignment[unlisted] = "train"
        unlisted[:] = False
    excluded = pd.DataFrame({"path": manifest.loc[unlisted, "path"], "reason": "in no shipped split list"})
    return assignment, excluded


def _stratified(pool: pd.DataFrame, fr: dict[str, float], rng: np.random.Generator) -> list[str]:
    """Per class: shuffle, then cut test and val counts (at least one each when their fraction is > 0)."""
    out = pd.Series("", index=pool.index)
    needed = [s for s in SPLITS if fr[s] > 0]
    for rows in pool.groupby("label", sort=True).groups.values():
        n = len(rows)
        if n < len(needed):
            name = pool.loc[rows[0], "class_name"]
            raise UserError(f"class '{name}' has {n} images but split.fractions needs at least {len(needed)} "
                            f"(one per split: {', '.join(needed)}); add images or change split.fractions")
        order = rng.permutation(np.asarray(rows))
        counts = {s: max(1, round(n * fr[s])) if fr[s] > 0 else 0 for s in ("test", "val")}
        while counts["test"] + counts["val"] >= n:  # keep at least one training image
            big = max(counts, key=counts.get)
            counts[big] -= 1
        out[order[: counts["test"]]] = "test"
        out[order[counts["test"]: counts["test"] + counts["val"]]] = "val"
        out[order[counts["test"] + counts["val"]:]] = "train"
    return list(out)


def _cap(manifest: pd.DataFrame, assignment: pd.Series, max_per_class: int, rng: np.random.Generator) -> pd.Series:
    """data.max_per_class: keep at most that many train images per class, and val/test in proportion."""
    out = assignment.copy()
    train_counts = manifest[assignment == "train"].groupby("label").size()
    for (split_name, label), rows in manifest.groupby([assignment, manifest["label"]]).groups.items():
        if not split_name:
            continue
        share = len(rows) / max(train_counts.get(label, 1), 1)
        keep = max_per_class if split_name == "train" else max(1, round(max_per_class * share))
        if len(rows) > keep:
            out[rng.choice(np.asarray(rows), len(rows) - keep, replace=False)] = ""
    return out


def _leakage(manifest: pd.DataFrame, assignment: pd.Series) -> tuple[pd.DataFrame, pd.Index]:
    """Content in more than one split; the rows of later splits are the ones to drop."""
    used = manifest.assign(split=assignment, rank=assignment.map({s: i for i, s in enumerate(SPLITS)}))
    used = used[assignment != ""]
    leaked = used[used.groupby("hash")["split"].transform("nunique") > 1]
    dropped = leaked.index[leaked["rank"] > leaked.groupby("hash")["rank"].transform("min")]
    report = leaked.sort_values(["hash", "rank", "path"])[["hash", "split", "path"]].reset_index(drop=True)
    return report, dropped


def write(split_params: dict, max_per_class: int | None, evaluate_split: str, raw: Path = paths.RAW,
          out: Path = paths.SPLIT, reports: Path = paths.DATA_REPORTS) -> dict:
    """The split stage: split the manifest, write the split lists, class index, counts, charts and reports."""
    manifest = read_manifest(raw / "manifest.csv")
    lists = json.loads((raw / "split_lists.json").read_text())
    s = split_params
    result = split(manifest, lists, s["fractions"], s["seed"], max_per_class, s["drop_leaked"], s["exclude"])
    check_usable(result.splits, evaluate_split)
    out.mkdir(parents=True, exist_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    classes = manifest.drop_duplicates("label").sort_values("label")["class_name"].tolist()
    (out / "classes.json").write_text(json.dumps({"classes": classes}, indent=1, ensure_ascii=False) + "\n")
    counts = {}
    for name, frame in result.splits.items():
        frame[["path", "label", "class_name", "id", "hash"]].to_csv(out / f"{name}.csv", index=False)
        per_class = {c: int((frame["label"] == i).sum()) for i, c in enumerate(classes)}
        counts[name] = {"total": len(frame), **per_class}
        plots.class_counts(per_class, f"{name}: {len(frame)} images", reports / f"class_counts_{name}.png")
    counts["leaked"] = int(result.leakage["hash"].nunique()) if len(result.leakage) else 0
    counts["excluded"] = len(result.excluded)
    (reports / "class_counts.json").write_text(json.dumps(counts, indent=1, ensure_ascii=False) + "\n")
    result.leakage.to_csv(reports / "leakage.csv", index=False)
    result.excluded.to_csv(reports / "split_excluded.csv", index=False)
    for note in result.notes:
        print(f"split: {note}")
    return counts
