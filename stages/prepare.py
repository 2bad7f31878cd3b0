"""prepare: decode/convert/resize every split into binary shards (data/prepared) and draw the augmentation preview."""

from pathlib import Path

import numpy as np

from imageclf import params, plots
from imageclf import prepare as cache
from imageclf.errors import cli
from imageclf.shards import load_split

RAW_ZIP = Path("data/raw/images.zip")
SPLIT = Path("data/split")
OUT = Path("data/prepared")
REPORTS = Path("reports/data")


def preview(prepared: Path, classes: list[str], seed: int, out: Path, n: int = 8) -> None:
    """The same training images (one per class, up to n) at each augmentation level."""
    from imageclf.augment import LEVELS, augmenter  # TensorFlow is imported only here

    images, labels = load_split(prepared, "train")
    picks = [int(np.flatnonzero(labels == c)[0]) for c in sorted(set(labels.tolist()))][:n]
    batch = images[picks].astype(np.float32) / 255.0
    rows = [batch]
    for level in sorted(LEVELS)[1:]:
        rows.append(np.asarray(augmenter(level, seed)(batch, training=True)).clip(0, 1))
    plots.image_grid(rows, [f"level {lv}" for lv in sorted(LEVELS)], [classes[labels[i]] for i in picks], out)


@cli
def main() -> None:
    p = params.load(("data", "prepare"))
    meta = cache.build(RAW_ZIP, SPLIT, OUT, REPORTS, p["prepare"], p["data"]["max_image_pixels"])
    preview(OUT, meta["classes"], p["prepare"]["seed"], REPORTS / "augment_preview.png")
    sizes = ", ".join(f"{k} {v['count']}" for k, v in meta["splits"].items())
    print(f"prepare: {sizes} records of shape {meta['shape']}; {meta['skipped']} skipped")


if __name__ == "__main__":
    main()
