"""The data audit: images whose label looks wrong (cleanlab, from out-of-sample class probabilities of a k-fold
logistic regression on cached frozen-backbone features) and images with quality issues (cleanvision: near and exact
duplicates, blurry, too dark or light, low information, odd size or aspect ratio), over every split.

reports/audit/ holds label_issues.csv (path, split, given and suggested label, label quality, ranked worst first),
image_issues.csv (path, split, issue, score), summary.json (a metric: counts per issue type) and suspects.png (the
most likely mislabelled images with their given and suggested labels). Nothing is removed here: data.exclude leaves
listed images out of every split (docs/datasets.md, "Data audit").
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from imageclf.core import paths
from imageclf.core.params import Field, Section

PARAMS = Section({  # params.yaml audit:
    "labels": Field((bool,)),  # cleanlab's label issues (needs the features: set below)
    "features": Field((str,)),  # the features: set the cross-validated classifier reads
    "folds": Field((int,), minimum=2),  # k of the k-fold out-of-sample probabilities
    "images": Field((bool, str), check=lambda v: None if v in (True, False, "auto") else
                    f"must be auto, true or false, got {v!r}"),  # cleanvision's image issues on the raw images
    "show": Field((int,), minimum=0),  # suspects drawn in suspects.png and the report
})

OUT = paths.REPORTS / "audit"
PCA_SAMPLE, CHUNK = 20_000, 8_192  # rows the feature projection is fitted on, and projects at a time
# audit.images auto: cleanvision runs up to this many images (~2.5 ms an image on 2 cores with the files written out:
# Fashion-MNIST's 70,000 would add ~3 minutes to the default run)
AUTO_IMAGES = 20_000
LABEL_COLUMNS = ["path", "split", "given", "suggested", "label_quality"]
IMAGE_COLUMNS = ["path", "split", "issue", "score"]
# cleanvision issue types checked; grayscale only when the images are prepared in colour (a grey dataset is no issue)
IMAGE_ISSUES = ("exact_duplicates", "near_duplicates", "blurry", "dark", "light", "low_information", "odd_size",
                "odd_aspect_ratio")


def reduce(parts: list[tuple[np.ndarray, np.ndarray]], seed: int = 0) -> np.ndarray:
    """The rows `parts` name ([(features, rows)], features memory-mapped) standardised and projected on their first
    (at most) 64 principal components, fitted on a sample of at most PCA_SAMPLE rows and applied CHUNK rows at a time:
    memory stays bounded whatever the number of images (all of them at once took 1.6 GB for 70,000)."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    total = sum(len(rows) for _, rows in parts)
    picked = np.sort(np.random.default_rng(seed).choice(total, min(total, PCA_SAMPLE), replace=False))
    starts = np.cumsum([0, *(len(rows) for _, rows in parts)])
    sample = np.concatenate([features[rows[picked[(picked >= a) & (picked < b)] - a]]
                             for (features, rows), a, b in zip(parts, starts, starts[1:], strict=False)])
    dims = min(64, sample.shape[1], len(sample) - 1)
    projection = make_pipeline(StandardScaler(), PCA(dims, random_state=seed)).fit(sample)
    return np.concatenate([projection.transform(features[rows[i:i + CHUNK]]).astype(np.float32)
                           for features, rows in parts for i in range(0, len(rows), CHUNK)])


def out_of_sample(features: np.ndarray, labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray | None:
    """Each image's class probabilities from a logistic regression that never saw it (k-fold, k lowered to the
    smallest class's size) on reduced features; None when a class has one image or there is one class (nothing to
    cross-validate)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    counts = np.bincount(labels)[np.unique(labels)]
    k = min(folds, int(counts.min())) if len(counts) else 0
    if k < 2 or len(counts) < 2:
        return None
    # (no rescaling of the components: it would give the noisy last ones the weight of the first)
    folds_of = StratifiedKFold(k, shuffle=True, random_state=seed)
    probs = cross_val_predict(LogisticRegression(max_iter=500), features, labels, cv=folds_of, method="predict_proba")
    out = np.zeros((len(labels), int(labels.max()) + 1))
    out[:, np.unique(labels)] = probs  # (columns of the classes present, in order)
    return out


def label_issues(index: pd.DataFrame, labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """cleanlab's likely label errors, worst first: index (path, split) rows with given and suggested labels."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    present = np.unique(labels)  # cleanlab wants every column a class that occurs: absent classes are dropped
    column = {k: i for i, k in enumerate(present)}
    local = np.array([column[k] for k in labels])
    found = find_label_issues(local, probs[:, present], return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(local, probs[:, present])
    suggested = present[probs[:, present].argmax(axis=1)]
    return pd.DataFrame({"path": index["path"].to_numpy()[found], "split": index["split"].to_numpy()[found],
                         "given": [classes[k] for k in labels[found]],
                         "suggested": [classes[k] for k in suggested[found]],
                         "label_quality": quality[found].round(4)}, columns=LABEL_COLUMNS)


def image_issues(index: pd.DataFrame, raw: Path, colour: bool) -> pd.DataFrame:
    """cleanvision's issues on the raw images: one row per image and issue it has."""
    from cleanvision import Imagelab

    from imageclf.data.ingest import RawImages

    images = RawImages(raw)
    checks = {name: {} for name in (*IMAGE_ISSUES, *(("grayscale",) if colour else ()))}
    with tempfile.TemporaryDirectory() as tmp:
        if images.root is not None:  # read in place
            files = [str(images.root / p) for p in index["path"]]
        else:  # packed (Fashion-MNIST): written out for cleanvision, which reads files
            files = []
            for i, p in enumerate(index["path"]):
                files.append(str(Path(tmp) / f"{i}{Path(p).suffix or '.png'}"))
                Path(files[-1]).write_bytes(images.read(p))
        lab = Imagelab(filepaths=files)
        lab.find_issues(checks, verbose=False)
        found = lab.issues.loc[files].reset_index(drop=True)  # (indexed by file path)
    rows = []
    for name in checks:
        flagged = np.flatnonzero(found[f"is_{name}_issue"].to_numpy())
        rows += [(index["path"].iat[i], index["split"].iat[i], name, round(float(found[f"{name}_score"].iat[i]), 4))
                 for i in flagged]
    return pd.DataFrame(rows, columns=IMAGE_COLUMNS)


def summary(labels: pd.DataFrame | None, images: pd.DataFrame | None, n_images: int) -> dict:
    """The metric: images audited and the count per issue type checked (a check not run has no count)."""
    out: dict = {"images": n_images}
    if labels is not None:
        out["label_issues"] = len(labels)
    if images is not None:
        out.update({name: int((images["issue"] == name).sum()) for name in dict.fromkeys([*IMAGE_ISSUES,
                                                                                          *images["issue"]])})
    return out


def write(out: Path, labels: pd.DataFrame | None, images: pd.DataFrame | None, n_images: int) -> dict:
    """reports/audit/: the CSVs (empty, with their header, for a check not run or with nothing found) and the metric."""
    out.mkdir(parents=True, exist_ok=True)
    (labels if labels is not None else pd.DataFrame(columns=LABEL_COLUMNS)).to_csv(out / "label_issues.csv",
                                                                                     index=False)
    (images if images is not None else pd.DataFrame(columns=IMAGE_COLUMNS)).to_csv(out / "image_issues.csv",
                                                                                     index=False)
    facts = summary(labels, images, n_images)
    (out / "summary.json").write_text(json.dumps(facts, indent=1) + "\n")
    return facts


def suspects_figure(issues: pd.DataFrame, pixels: list[np.ndarray], out: Path) -> None:
    """The likeliest mislabelled images, each titled 'given -> suggested'; one line of text when there is none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not len(pixels):
        fig = plt.figure(figsize=(6, 0.6))
        fig.text(0.02, 0.5, "No likely label error found.", va="center")
    else:
        cols = min(8, len(pixels))
        rows = -(-len(pixels) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, img, row in zip(axes.flat, pixels, issues.itertuples(), strict=False):
            ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=255)
            ax.set_title(f"{row.given}\n-> {row.suggested}", fontsize=8)
        fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def run(p: dict, prepared: Path = paths.PREPARED, raw: Path = paths.RAW, features_root: Path = paths.FEATURES,
        out: Path = OUT) -> dict:
    """The audit stage: label issues (audit.labels) and image issues (audit.images) over every split's images
    (offline-augmented copies left out); writes reports/audit/ and returns the metric."""
    from imageclf.cache.shards import load_split, read_meta

    a = p["audit"]
    meta = read_meta(prepared)
    frames = []
    for split in paths.SPLITS:
        frame = pd.read_csv(prepared / f"{split}.csv", dtype={"path": str}, keep_default_na=False)
        frames.append(frame.assign(split=split, row=np.arange(len(frame)))[frame["copy"] == 0])
    index = pd.concat(frames, ignore_index=True)
    labels = images = None
    if a["labels"]:
        rows = {s: index.loc[index["split"] == s, "row"].to_numpy() for s in paths.SPLITS}
        parts = [(np.load(features_root / a["features"] / f"{s}.npy", mmap_mode="r"), rows[s])
                 for s in paths.SPLITS if len(rows[s])]  # (an empty split has no feature file)
        given = index["label"].to_numpy(np.int64)  # (an empty split's columns would make it object)
        probs = out_of_sample(reduce(parts), given, a["folds"]) if len(index) > 2 else None
        if probs is None:
            print("audit: label issues not checked (a class has a single image, or there is one class)")
        else:
            labels = label_issues(index, given, probs, meta["classes"])
    run_images = a["images"] is True or (a["images"] == "auto" and len(index) <= AUTO_IMAGES)
    if a["images"] == "auto" and not run_images:
        print(f"audit: image issues not checked ({len(index):,} images, more than audit.images auto checks: "
              f"{AUTO_IMAGES:,}); audit.images true checks them (~2.5 ms an image)")
    if run_images and len(index):
        images = image_issues(index, raw, colour=meta["shape"][2] == 3)
    facts = write(out, labels, images, len(index))
    shown = labels.head(a["show"]) if labels is not None else pd.DataFrame(columns=LABEL_COLUMNS)
    where = index.set_index("path")
    pixels = [load_split(prepared, where.at[path, "split"])[0][int(where.at[path, "row"])] for path in shown["path"]]
    suspects_figure(shown, pixels, out / "suspects.png")
    return facts
