"""Generated image datasets in the layouts users bring (regex file names with validation.txt, annotation CSV, folder
per class), grey and RGB, with and without transparency, balanced and skewed: the own-data benchmark's inputs.

    .venv/bin/python bench/datasets.py OUT_DIR [NAME ...]

Each picture is a shape class drawn at a random position, size, rotation and stroke on a noisy background, so a
model has to learn shapes rather than pixel positions. Everything is seeded: the same call writes the same files.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "star", "hexagon", "bar", "arrow", "moon",
          "plus_ring")
COLOURS = ((220, 40, 40), (40, 160, 60), (40, 80, 220), (230, 200, 30), (160, 60, 200), (30, 190, 200))


def _polygon(cx: float, cy: float, r: float, n: int, turn: float, inner: float = 1.0) -> list[tuple[float, float]]:
    points = []
    for k in range(n * (2 if inner != 1.0 else 1)):
        radius = r if k % 2 == 0 or inner == 1.0 else r * inner
        angle = turn + k * math.pi / (n if inner != 1.0 else n / 2)
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, turn: float, fill,
               width: int) -> None:
    """One shape of radius r around (cx, cy), turned by `turn` radians."""
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=width)
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, r, 4, turn + math.pi / 4), fill=fill)
    elif shape == "diamond":
        draw.polygon(_polygon(cx, cy, r, 4, turn), outline=fill, width=width)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, r, 3, turn), fill=fill)
    elif shape == "hexagon":
        draw.polygon(_polygon(cx, cy, r, 6, turn), fill=fill)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy, r, 5, turn, inner=0.45), fill=fill)
    elif shape in ("cross", "plus_ring"):
        for a in (turn, turn + math.pi / 2):
            dx, dy = r * math.cos(a), r * math.sin(a)
            draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=fill, width=width)
        if shape == "plus_ring":
            draw.ellipse(box, outline=fill, width=max(1, width // 2))
    elif shape == "bar":
        dx, dy = r * math.cos(turn), r * math.sin(turn)
        draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=fill, width=width * 2)
    elif shape == "arrow":
        dx, dy = r * math.cos(turn), r * math.sin(turn)
        draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=fill, width=width)
        head = _polygon(cx + dx, cy + dy, r * 0.45, 3, turn)
        draw.polygon(head, fill=fill)
    elif shape == "moon":
        draw.ellipse(box, fill=fill)
        off = r * 0.5
        draw.ellipse((cx - r + off * math.cos(turn), cy - r + off * math.sin(turn),
                      cx + r + off * math.cos(turn), cy + r + off * math.sin(turn)), fill=(0, 0, 0, 0))
    else:
        raise ValueError(shape)


def picture(label: int, index: int, size: int, mode: str, n_shapes: int, seed: int) -> Image.Image:
    """Class `label` = shape (label % n_shapes) in colour (label // n_shapes); mode L, RGB or RGBA (transparent
    background)."""
    rng = np.random.default_rng([seed, label, index])
    shape, colour = SHAPES[label % n_shapes], COLOURS[(label // n_shapes) % len(COLOURS)]
    scale = 4  # drawn large, then reduced: smooth edges
    big = size * scale
    if mode == "RGBA":
        img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    else:
        noise = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
        tint = rng.integers(0, 70, 3, dtype=np.uint8)
        img = Image.fromarray(np.clip(noise.astype(int) + tint, 0, 255).astype(np.uint8)).resize((big, big))
        img = img.convert("RGBA")
    draw = ImageDraw.Draw(img)
    r = big * rng.uniform(0.16, 0.32)
    cx, cy = (big * rng.uniform(0.3, 0.7) for _ in range(2))
    jitter = rng.integers(-40, 41, 3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, jitter, strict=True)) + (255,)
    if mode == "L":
        fill = (int(rng.integers(170, 256)),) * 3 + (255,)
    draw_shape(draw, shape, cx, cy, r, rng.uniform(0, 2 * math.pi), fill, max(2, int(big * rng.uniform(0.03, 0.06))))
    for _ in range(int(rng.integers(0, 3))):  # clutter: small distractor dots
        x, y, s = big * rng.uniform(0, 1), big * rng.uniform(0, 1), big * 0.03
        draw.ellipse((x - s, y - s, x + s, y + s), fill=(200, 200, 200, 255) if mode != "RGBA" else (90, 90, 90, 255))
    img = img.resize((size, size), Image.Resampling.LANCZOS).filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.6)))
    return img if mode == "RGBA" else img.convert(mode)


def counts(n_classes: int, total: int, skew: float) -> list[int]:
    """Images per class summing to about `total`; skew 0 is balanced, 1 makes the last class ~1/5 of the first."""
    weights = np.linspace(1.0, 1.0 - 0.8 * skew, n_classes)
    return [max(4, int(round(total * w / weights.sum()))) for w in weights]


def _shape_name(label: int, sep: str) -> str:
    return f"{SHAPES[label % len(SHAPES)]}{sep}{label // len(SHAPES)}"


# layout -> the class name the pipeline reads for a label (regex: the label and name groups; csv: the label column;
# folder: the folder), so images drawn later can be scored against the trained models
CLASS_NAMES: dict[str, Callable[[int], str]] = {
    "regex": lambda label: f"{3000 + label} {_shape_name(label, ' ').replace('_', ' ')}",
    "csv": lambda label: f"class_{label:02d}",
    "folder": lambda label: _shape_name(label, "_"),
}


def regex_tree(root: Path, n_classes: int, total: int, size: int, mode: str, skew: float = 0.0,
               validation: float = 0.2, seed: int = 0) -> dict:
    """LEGO layout: flat folder of '<id> <name> <view>.png' plus validation.txt (file names)."""
    root.mkdir(parents=True, exist_ok=True)
    listed = []
    for label, count in enumerate(counts(n_classes, total, skew)):
        for i in range(count):
            fname = f"{CLASS_NAMES['regex'](label)} {i:03d}{'LR'[i % 2]}.png"
            picture(label, i, size, mode, min(n_classes, len(SHAPES)), seed).save(root / fname)
            if i < round(count * validation):
                listed.append(fname)
    (root / "validation.txt").write_text("\n".join(listed) + "\n")
    return {"source": "folder", "path": str(root), "labels": "regex",
            "filename_regex": r"(?P<label>\d+) (?P<name>.+) (?P<id>\d{3}[LR])\.png"}


def csv_tree(root: Path, n_classes: int, total: int, size: int, mode: str, skew: float = 0.0, seed: int = 0) -> dict:
    """Images in one folder plus labels.csv (path,label)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = ["path,label"]
    ext = ".png" if mode == "RGBA" else ".jpg"
    for label, count in enumerate(counts(n_classes, total, skew)):
        name = CLASS_NAMES["csv"](label)
        for i in range(count):
            rel = f"images/{label:02d}_{i:04d}{ext}"
            picture(label, i, size, mode, min(n_classes, len(SHAPES)), seed).save(root / rel, quality=92)
            rows.append(f"{rel},{name}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return {"source": "folder", "path": str(root), "labels": "csv", "labels_csv": "labels.csv"}


def folder_tree(root: Path, n_classes: int, total: int, size: int, mode: str, skew: float = 0.0,
                seed: int = 0) -> dict:
    """root/<class>/*.jpg (folder per class)."""
    for label, count in enumerate(counts(n_classes, total, skew)):
        folder = root / CLASS_NAMES["folder"](label)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            picture(label, i, size, mode, min(n_classes, len(SHAPES)), seed).save(folder / f"{i:04d}.jpg", quality=92)
    return {"source": "folder", "path": str(root), "labels": "folder"}


def digits_tree(root: Path) -> dict:
    """scikit-learn's 1,797 8x8 handwritten digits as PNG files, one folder per digit."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((pixels * 255 / 16).round().astype(np.uint8), "L").save(folder / f"{i:04d}.png")
    return {"source": "folder", "path": str(root), "labels": "folder"}


@dataclass(frozen=True)
class Tree:
    """A generated dataset: `layout` (regex, csv or folder), classes, images in all, side, PIL mode, skew."""

    layout: str
    classes: int
    total: int
    size: int
    mode: str
    skew: float = 0.0

    def build(self, root: Path) -> dict:
        make = {"regex": regex_tree, "csv": csv_tree, "folder": folder_tree}[self.layout]
        return make(root, self.classes, self.total, self.size, self.mode, skew=self.skew)

    def fresh(self, root: Path, per_class: int, seed: int = 0) -> None:
        """`per_class` images of each class drawn after the dataset's own (indices from FRESH_FROM: none of them is
        in the dataset), in root/<the class name the pipeline reads>/, saved as the dataset saves its images."""
        ext = ".png" if self.layout == "regex" or self.mode == "RGBA" else ".jpg"
        for label in range(self.classes):
            folder = root / CLASS_NAMES[self.layout](label)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(FRESH_FROM, FRESH_FROM + per_class):
                picture(label, i, self.size, self.mode, min(self.classes, len(SHAPES)), seed).save(
                    folder / f"{i}{ext}", quality=92)


FRESH_FROM = 100_000  # picture indices of fresh images: every dataset draws its own from 0

# name -> (what it is, how to build it under a folder): the data: block each returns is all a user would set
DATASETS: dict[str, tuple[str, Tree | Callable[[Path], dict]]] = {
    "regex_grey_288": ("288 grey 64 px images, 12 shape classes, regex names + validation.txt",
                       Tree("regex", 12, 288, 64, "L")),
    "csv_rgba_1911": ("1,911 RGBA 64 px icons (transparent background), 10 classes, labels.csv",
                      Tree("csv", 10, 1911, 64, "RGBA")),
    "folder_rgb_skewed_1000": ("1,000 RGB 96 px JPEGs on tinted noise, 6 shape classes, skewed 5:1",
                               Tree("folder", 6, 1000, 96, "RGB", skew=1.0)),
    "folder_grey_100": ("100 grey 48 px JPEGs, 3 classes", Tree("folder", 3, 100, 48, "L")),
    "folder_rgb_50class_5000": ("5,000 RGB 32 px JPEGs, 50 classes (12 shapes x 6 colours, first 50)",
                                Tree("folder", 50, 5000, 32, "RGB")),
    "digits_1797": ("scikit-learn's 8x8 digits as PNG files, 10 classes", digits_tree),
}


def build(name: str, out: Path) -> dict:
    """Write dataset `name` under out/name (once: out/name.json marks it complete) and return its data: block."""
    marker = out / f"{name}.json"
    if marker.exists():
        return json.loads(marker.read_text())
    make = DATASETS[name][1]
    data = make.build(out / name) if isinstance(make, Tree) else make(out / name)
    marker.write_text(json.dumps(data))
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("names", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    for n in args.names:
        print(n, build(n, args.out))
