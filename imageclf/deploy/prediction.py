"""Classify image files with a trained model, each file converted exactly as the prepare stage converts it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from imageclf.core.errors import UserError
from imageclf.data import images


def find_images(paths: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files among paths (folders searched recursively, hidden entries passed over), and every other file
    with the reason it is not used. A path that does not exist or a folder without images is a one-line error."""
    if not paths:
        raise UserError("predict: no input; give image files or folders")
    chosen, skipped = [], []
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not any(_is_image(p) for p in found):
                raise UserError(f"{path}: a folder with no image files ({len(found)} other files; image files end in "
                                f"{', '.join(images.IMAGE_EXTENSIONS)})")
        elif path.is_file():
            found = [path]
        else:
            raise UserError(f"{path}: no such file or folder")
        for file in found:
            if _is_image(file):
                chosen.append(file)
            else:
                skipped.append((str(file), "not an image file extension"))
    return chosen, skipped


def _is_image(path: Path) -> bool:
    return path.name.lower().endswith(images.IMAGE_EXTENSIONS)


def batches(files: list[Path], prepare: dict, size: tuple[int, int], max_pixels: int, batch_size: int,
            skipped: list[tuple[str, str]]) -> Iterator[tuple[list[Path], np.ndarray]]:
    """(files, uint8 pixels [N, H, W, C]) per batch, decoded and converted as the prepare stage does; files that are
    not usable images are appended to skipped with the reason and left out."""
    for start in range(0, len(files), batch_size):
        kept, arrays = [], []
        for file in files[start:start + batch_size]:
            try:
                img = images.open_image(file.read_bytes(), max_pixels)
                arrays.append(images.to_array(img, size, prepare["color"], prepare["resize"], prepare["invert"]))
                kept.append(file)
            except ValueError as err:
                skipped.append((str(file), str(err)))
            except OSError as err:
                skipped.append((str(file), f"cannot read file ({err.strerror or err})"))
        if kept:
            yield kept, np.stack(arrays)


def top_k(files: list[Path], probs: np.ndarray, classes: list[str], k: int) -> pd.DataFrame:
    """One row per file: path, then class_1, prob_1 ... class_k, prob_k (most probable first)."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    frame = pd.DataFrame({"path": [str(f) for f in files]})
    for rank in range(order.shape[1]):
        frame[f"class_{rank + 1}"] = [classes[i] for i in order[:, rank]]
        frame[f"prob_{rank + 1}"] = probs[np.arange(len(probs)), order[:, rank]]
    return frame
