"""Fashion-MNIST: the canonical idx .gz files, read locally or downloaded, checksum-verified."""

from __future__ import annotations

import gzip
import hashlib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from imageclf.core.errors import UserError

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# Per file: md5 of the canonical .gz (upstream) and sha256 of its decompressed bytes (the same for any re-packing,
# e.g. Debian's dataset-fashion-mnist, whose .gz bytes differ).
FILES = {
    "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                   "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe",
                                   "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79",
                                  "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310",
                                  "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
SPLITS = {"train": "train", "test": "t10k"}


def _verified_bytes(path: Path, name: str) -> bytes:
    """The decompressed idx bytes of one file after checking its checksum."""
    md5, sha = FILES[name]
    packed = path.read_bytes()
    try:
        raw = gzip.decompress(packed)
    except (OSError, EOFError) as err:
        raise UserError(f"{path}: not a valid gzip file ({err}); delete it so it is fetched again") from None
    if hashlib.md5(packed).hexdigest() != md5 and hashlib.sha256(raw).hexdigest() != sha:
        raise UserError(f"{path}: checksum mismatch (expected the canonical Fashion-MNIST file); "
                        "delete it so it is fetched again, or reinstall dataset-fashion-mnist")
    return raw


def _download(name: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    try:
        urllib.request.urlretrieve(BASE_URL + name, target)
    except (urllib.error.URLError, OSError) as err:
        raise UserError(
            f"data.path: {name} is not in {directory} and downloading it failed ({getattr(err, 'reason', err)}); "
            "install the Debian package dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist) "
            "or copy the four idx .gz files there"
        ) from None
    return target


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Parse an idx1 (labels) or idx3 (images) byte string."""
    if len(raw) < 8 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise UserError(f"{name}: not an unsigned-byte idx file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise UserError(f"{name}: idx header says {dims} but the file holds {body.size} values")
    return body.reshape(dims)


def load(directory: Path, allow_download: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (images, labels), 'test': (images, labels)} from directory (downloading missing files)."""
    out = {}
    for split, prefix in SPLITS.items():
        arrays = []
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{prefix}-{kind}-ubyte.gz"
            path = directory / name
            if not path.exists():
                if not allow_download:
                    raise UserError(f"data.path: {path} does not exist")
                path = _download(name, directory)
            arrays.append(parse_idx(_verified_bytes(path, name), name))
        images, labels = arrays
        if len(images) != len(labels) or labels.max(initial=0) >= len(CLASSES):
            raise UserError(f"{directory}: {prefix} images and labels do not match")
        out[split] = (images, labels)
    return out
