"""Decode, validate and convert single images (PIL), with a readable reason when one cannot be used."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    mode: str
    hash: str  # sha256 of the decoded pixels (mode, size and bytes): same picture, same hash
    grey: bool  # no colour to speak of (prepare.color: auto keeps grey only when every image is)


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode image bytes fully, upright (EXIF orientation applied); raises ValueError with a readable reason when
    they are not a usable image."""
    if not data:
        raise ValueError("empty file (0 bytes)")
    Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ValueError(f"image too large (over data.max_image_pixels={max_pixels} pixels)") from None
        except UnidentifiedImageError:
            raise ValueError("not a readable image (unknown or corrupt format)") from None
        except (OSError, SyntaxError, EOFError) as err:
            raise ValueError(f"truncated or corrupt image ({err})") from None
    return ImageOps.exif_transpose(img)  # phone photos: the pixels as the camera meant them to be shown


def inspect(data: bytes, max_pixels: int) -> ImageInfo:
    """Validate image bytes and describe them; raises ValueError with the reason when unusable."""
    img = open_image(data, max_pixels)
    digest = hashlib.sha256(f"{img.mode}{img.size}".encode())
    digest.update(img.tobytes())
    return ImageInfo(img.width, img.height, img.mode, digest.hexdigest(), is_grey(img))


GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
GREY_SPREAD = 8  # largest channel spread (max - min of R, G, B) of 99% of the pixels that still counts as grey


def is_grey(img: Image.Image) -> bool:
    """Whether an image holds no colour: a grey mode, or RGB whose channels agree (grey saved as RGB or JPEG);
    transparent pixels count as the white they are shown on."""
    if img.mode in GREY_MODES:
        return True
    rgb = np.asarray(to_8bit(img, "rgb"), dtype=np.int16)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return float(np.percentile(spread, 99)) <= GREY_SPREAD


def to_8bit(img: Image.Image, color: str) -> Image.Image:
    """Any PIL mode (CMYK, 16-bit, palette, alpha, 1-bit) to 8-bit 'RGB' or 'L'; transparency goes onto white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.int64)
        peak = 65535 if arr.max(initial=0) > 255 else 255
        img = Image.fromarray((arr * 255 // peak).clip(0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray((arr.clip(0.0, 1.0) * 255).round().astype(np.uint8), "L")
    if img.mode == "P" or img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    target = "L" if color == "grayscale" else "RGB"
    return img if img.mode == target else img.convert(target)


# prepare.resize: how an image meets the target (width, height)
RESIZE = {
    "stretch": lambda img, wh: img.resize(wh, Image.Resampling.BILINEAR),
    "crop": lambda img, wh: ImageOps.fit(img, wh, Image.Resampling.BILINEAR, centering=(0.5, 0.5)),
    "pad": lambda img, wh: ImageOps.pad(img, wh, Image.Resampling.BILINEAR, color=0),  # letterbox with black
}
COLORS = ("grayscale", "rgb")  # prepare.color


def to_array(img: Image.Image, size: tuple[int, int], color: str, resize: str, invert: bool) -> np.ndarray:
    """Convert and resize one image to a (height, width, channels) uint8 array."""
    img = RESIZE[resize](to_8bit(img, color), (size[1], size[0]))
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return 255 - arr if invert else arr


def encode_png(array: np.ndarray) -> bytes:
    """A uint8 (H, W) or (H, W, C) array as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(array.squeeze() if array.ndim == 3 and array.shape[2] == 1 else array).save(buf, "PNG")
    return buf.getvalue()
