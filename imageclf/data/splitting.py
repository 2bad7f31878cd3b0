"""Assign every manifest row to train / val / test: shipped split lists, official test set, or stratified.

The manifest is read row by row, never held: into arrays of what the rules need (label, official split, shipped
list, split.exclude, a hash prefix: about 20 bytes an image), then for the full hashes of possible copies, then to
write each row to its split's list.
"""

from __future__ import annotations

import array
import contextlib
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from imageclf.core import paths
from imageclf.core.errors import UserError
from imageclf.core.params import Field, Section
from imageclf.core.paths import SPLITS
from imageclf.data import plots
from imageclf.data.ingest import shared_hashes


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

NONE = -1  # a row in no split; the others are indices into SPLITS
# why a row is in no split (split_excluded.csv), by code
REASONS = {1: "in no shipped split list", 2: "same content as an image of an earlier split",
           3: "listed in split.exclude"}
UNLISTED, LEAKED, EXCLUDED = REASONS


@dataclass
class Rows:
    """What the split rules need of each manifest row, in the manifest's (path) order."""

    labels: np.ndarray  # int
    copies: dict[int, str]  # the pixel hash of every row whose pixels another row has too
    official_test: np.ndarray  # bool: the dataset's own test set (Fashion-MNIST)
    excluded: np.ndarray  # bool: listed in split.exclude
    class_names: dict[int, str]  # label -> class name
    listed: dict[str, list[tuple[str, list[int]]]] = field(default_factory=dict)  # shipped list: (entry, rows)


def read_rows(manifest: Path, lists: dict[str, list[str]], exclude: list[str]) -> Rows:
    """The manifest's rows as arrays, with the rows each shipped-list entry names and split.exclude checked."""
    if not manifest.exists():
        raise UserError(f"{manifest} not found; run the download stage first (dvc repro)")
    entries = {s: [e.replace("\\", "/").lstrip("./") for e in names] for s, names in lists.items()}
    wanted = {e for names in entries.values() for e in names}
    by_path: dict[str, int] = {}
    by_name: dict[str, list[int]] = {}
    labels, prefixes, official, excluded = array.array("i"), array.array("Q"), bytearray(), bytearray()
    names: dict[int, str] = {}
    leave_out = set(exclude)
    unknown, last = set(leave_out), ""
    with open(manifest, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        column = {name: i for i, name in enumerate(next(reader))}
        at = [column[c] for c in ("path", "label", "class_name", "hash", "official_split")]
        for row, fields in enumerate(reader):
            path, label, name, digest, split = (fields[i] for i in at)
            if path <= last:
                raise UserError(f"{manifest}: rows not in path order at '{path}'; run the download stage again "
                                "(dvc repro -f download)")
            last = path
            labels.append(int(label))
            names.setdefault(int(label), name)
            prefixes.append(int(digest[:16], 16))
            official.append(split == "test")
            excluded.append(path in leave_out)
            unknown.discard(path)
            if path in wanted:
                by_path[path] = row
            base = path.rsplit("/", 1)[-1]
            if base in wanted:
                by_name.setdefault(base, []).append(row)
    if unknown:
        raise UserError(f"params.yaml: 'split.exclude' lists {len(unknown)} path(s) that are no image of the dataset, "
                        f"e.g. {sorted(unknown)[0]!r}; use the paths of reports/audit/label_issues.csv or "
                        "reports/data/*.csv")
    listed = {s: [(e, [by_path[e]] if e in by_path else by_name.get(e, [])) for e in names]
              for s, names in entries.items()}
    return Rows(np.frombuffer(labels, dtype=np.int32), _copies(manifest, np.frombuffer(prefixes, np.uint64)),
                np.frombuffer(bytes(official), dtype=bool), np.frombuffer(bytes(excluded), dtype=bool), names, listed)


def _copies(manifest: Path, prefixes: np.ndarray) -> dict[int, str]:
    """The full hash of each row whose pixels another row has too (ingest.shared_hashes over the manifest)."""
    with open(manifest, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        return shared_hashes(prefixes, reader, next(reader).index("hash"))


@dataclass
class SplitResult:
    assignment: np.ndarray  # per row: an index into SPLITS, or NONE
    reasons: np.ndarray  # per row: a REASONS code where the row is in no split on purpose, else 0
    leaked: list[tuple[str, int, int]]  # (hash, split index, row) of content in more than one split, report order
    notes: list[str]


def split(rows: Rows, fractions: dict[str, float], seed: int, max_per_class: int | None,
          drop_leaked: bool) -> SplitResult:
    """Split the rows; see docs/datasets.md 'Split rules'.

    Splits the dataset assigns itself (shipped lists, an official test set) are kept exactly. Every other split
    whose fraction is > 0 is carved, stratified, from the training pool in proportion to split.fractions. Images
    split.exclude lists are left out of every split.
    """
    notes: list[str] = []
    rng = np.random.default_rng(seed)
    n = len(rows.labels)
    reasons = np.zeros(n, np.int8)
    if rows.listed:
        assignment = _from_lists(rows.listed, n)
        if "train" not in rows.listed:
            assignment[assignment == NONE] = SPLITS.index("train")
        reasons[assignment == NONE] = UNLISTED
        fixed = set(rows.listed) - {"train"}
        notes.append(f"used the split lists shipped with the dataset: {', '.join(sorted(rows.listed))}")
    else:
        assignment = np.full(n, SPLITS.index("train"), np.int8)
        assignment[rows.official_test] = SPLITS.index("test")
        fixed = {"test"} if (rows.official_test & ~rows.excluded).any() else set()
    assignment[rows.excluded] = NONE
    reasons[rows.excluded] = EXCLUDED
    ignored = sorted(s for s in fixed if fractions[s] > 0)
    if ignored:
        notes.append(f"the dataset ships its own {' and '.join(ignored)} split: split.fractions for it not used")
    carve = {s: (0.0 if s in fixed else fractions[s]) for s in SPLITS}
    carved = [s for s in SPLITS if s != "train" and carve[s] > 0]
    if carved:
        total = sum(carve.values())
        pool = np.flatnonzero(assignment == SPLITS.index("train"))
        assignment[pool] = _stratified(rows, pool, {s: v / total for s, v in carve.items()}, rng)
        if fixed or rows.listed:
            notes.append(f"carved {' and '.join(carved)} from the training images, stratified, in proportion to "
                         "split.fractions")
    if max_per_class:
        assignment = _cap(rows.labels, assignment, max_per_class, rng)
    leaked, dropped = _leakage(rows.copies, assignment)
    if drop_leaked and len(dropped):
        assignment[dropped] = NONE
        reasons[dropped] = LEAKED
    return SplitResult(assignment, reasons, leaked, notes)


def check_usable(sizes: dict[str, int], evaluate_split: str) -> None:
    """Training needs val images (early stopping) and evaluation needs images in evaluate.split: say so now."""
    if not sizes["val"]:
        raise UserError("split: the val split is empty, but training needs it (early stopping, best epoch); set "
                        "split.fractions.val > 0, or ship val.txt / validation.txt with the dataset")
    if not sizes[evaluate_split]:
        raise UserError(f"split: evaluate.split is '{evaluate_split}' but that split is empty; set "
                        f"split.fractions.{evaluate_split} > 0 (or ship {evaluate_split}.txt), or set evaluate.split "
                        "to val")


def _from_lists(listed: dict[str, list[tuple[str, list[int]]]], n: int) -> np.ndarray:
    """Shipped lists used exactly; an entry may be a tree path or a bare file name (LEGO's validation.txt)."""
    assignment = np.full(n, NONE, np.int8)
    for split_name in ("test", "val", "train"):
        for entry, matches in listed.get(split_name, []):
            if not matches:
                raise UserError(f"{split_name} split list: '{entry}' is not an image of the dataset (missing, or "
                                "skipped: see reports/data/skipped.csv); fix the list or restore the file")
            if len(matches) > 1:
                raise UserError(f"{split_name} split list: '{entry}' matches {len(matches)} files; list tree paths")
            row = matches[0]
            if assignment[row] != NONE and SPLITS[assignment[row]] != split_name:
                raise UserError(f"split lists: '{entry}' is listed in both {SPLITS[assignment[row]]} and "
                                f"{split_name}")
            assignment[row] = SPLITS.index(split_name)
    return assignment


def _stratified(rows: Rows, pool: np.ndarray, fr: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """Per class: shuffle, then cut test and val counts (at least one each when their fraction is > 0)."""
    out = np.full(len(pool), NONE, np.int8)
    needed = [s for s in SPLITS if fr[s] > 0]
    labels = rows.labels[pool]
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)  # positions in the pool, in row order
        n = len(members)
        if n < len(needed):
            raise UserError(f"class '{rows.class_names[int(label)]}' has {n} images but split.fractions needs at "
                            f"least {len(needed)} (one per split: {', '.join(needed)}); add images or change "
                            "split.fractions")
        order = rng.permutation(members)
        counts = {s: max(1, round(n * fr[s])) if fr[s] > 0 else 0 for s in ("test", "val")}
        while counts["test"] + counts["val"] >= n:  # keep at least one training image
            big = max(counts, key=counts.get)
            counts[big] -= 1
        out[order[: counts["test"]]] = SPLITS.index("test")
        out[order[counts["test"]: counts["test"] + counts["val"]]] = SPLITS.index("val")
        out[order[counts["test"] + counts["val"]:]] = SPLITS.index("train")
    return out


def _cap(labels: np.ndarray, assignment: np.ndarray, max_per_class: int, rng: np.random.Generator) -> np.ndarray:
    """data.max_per_class: keep at most that many train images per class, and val/test in proportion."""
    out = assignment.copy()
    train = SPLITS.index("train")
    train_counts = np.bincount(labels[assignment == train], minlength=labels.max(initial=0) + 1)
    for split_name in sorted(SPLITS):  # split by name, then label: the order the random draws were made in
        code = SPLITS.index(split_name)
        for label in np.unique(labels[assignment == code]):
            members = np.flatnonzero((assignment == code) & (labels == label))
            share = len(members) / max(int(train_counts[label]), 1)
            keep = max_per_class if code == train else max(1, round(max_per_class * share))
            if len(members) > keep:
                out[rng.choice(members, len(members) - keep, replace=False)] = NONE
    return out


def _leakage(copies: dict[int, str], assignment: np.ndarray) -> tuple[list[tuple[str, int, int]], list[int]]:
    """Content in more than one split as (hash, split index, row) in report order, and the rows of later splits:
    the ones to drop."""
    used = [row for row in copies if assignment[row] != NONE]
    frame = pd.DataFrame({"hash": [copies[row] for row in used], "split": assignment[used].astype(int), "row": used},
                         columns=["hash", "split", "row"])
    leaked = frame[frame.groupby("hash")["split"].transform("nunique") > 1]
    dropped = leaked.loc[leaked["split"] > leaked.groupby("hash")["split"].transform("min"), "row"]
    report = leaked.sort_values(["hash", "split", "row"])
    return list(report.itertuples(index=False, name=None)), sorted(dropped.tolist())


def write(split_params: dict, max_per_class: int | None, evaluate_split: str, raw: Path = paths.RAW,
          out: Path = paths.SPLIT, reports: Path = paths.DATA_REPORTS) -> dict:
    """The split stage: split the manifest, write the split lists, class index, counts, charts and reports."""
    s = split_params
    lists = json.loads((raw / "split_lists.json").read_text())
    rows = read_rows(raw / "manifest.csv", lists, s["exclude"])
    result = split(rows, s["fractions"], s["seed"], max_per_class, s["drop_leaked"])
    sizes = {name: int((result.assignment == i).sum()) for i, name in enumerate(SPLITS)}
    check_usable(sizes, evaluate_split)
    out.mkdir(parents=True, exist_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    classes = [rows.class_names[label] for label in sorted(rows.class_names)]
    (out / "classes.json").write_text(json.dumps({"classes": classes}, indent=1, ensure_ascii=False) + "\n")
    paths_of = _write_lists(raw / "manifest.csv", result, out)
    counts = {}
    for i, name in enumerate(SPLITS):
        labels = rows.labels[result.assignment == i]
        per_class = {c: int((labels == k).sum()) for k, c in enumerate(classes)}
        counts[name] = {"total": sizes[name], **per_class}
        plots.class_counts(per_class, f"{name}: {sizes[name]} images", reports / f"class_counts_{name}.png")
    counts["leaked"] = len({digest for digest, _, _ in result.leaked})
    counts["excluded"] = int((result.reasons != 0).sum())
    (reports / "class_counts.json").write_text(json.dumps(counts, indent=1, ensure_ascii=False) + "\n")
    pd.DataFrame([(digest, SPLITS[code], paths_of[row]) for digest, code, row in result.leaked],
                 columns=["hash", "split", "path"]).to_csv(reports / "leakage.csv", index=False)
    pd.DataFrame([(paths_of[row], REASONS[result.reasons[row]]) for row in np.flatnonzero(result.reasons)],
                 columns=["path", "reason"]).to_csv(reports / "split_excluded.csv", index=False)
    for note in result.notes:
        print(f"split: {note}")
    return counts


def _write_lists(manifest: Path, result: SplitResult, out: Path) -> dict[int, str]:
    """Each row to its split's list (path, label, class_name, id, hash); returns the paths of the rows the reports
    name (leaked or left out)."""
    named = {row for _, _, row in result.leaked} | set(np.flatnonzero(result.reasons).tolist())
    paths_of: dict[int, str] = {}
    columns = ["path", "label", "class_name", "id", "hash"]
    with contextlib.ExitStack() as stack:
        writers = [csv.writer(stack.enter_context(open(out / f"{name}.csv", "w", encoding="utf-8", newline="")),
                              lineterminator="\n") for name in SPLITS]
        for writer in writers:
            writer.writerow(columns)
        reader = csv.reader(stack.enter_context(open(manifest, encoding="utf-8", newline="")))
        header = next(reader)
        at = [header.index(c) for c in columns]
        for row, fields in enumerate(reader):
            if row in named:
                paths_of[row] = fields[at[0]]
            if result.assignment[row] != NONE:
                writers[result.assignment[row]].writerow([fields[i] for i in at])
    return paths_of
