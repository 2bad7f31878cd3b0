"""Download an archive once (resumable, checksum-verified) and extract it safely."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from tqdm import tqdm

from imageclf.core.errors import UserError

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, sha256: str, cache_dir: Path) -> Path:
    """Return the verified archive for url in cache_dir, downloading (or resuming) it when needed."""
    name = PurePosixPath(urlparse(url).path).name or "archive"
    target = cache_dir / f"{sha256[:12]}-{name}"
    if target.exists() and sha256_file(target) == sha256.lower():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if start and response.status != 206:  # server ignored the range: start over
                start = 0
            total = response.length + start if response.length else None
            with open(part, "ab" if start else "wb") as out, tqdm(
                total=total, initial=start, unit="B", unit_scale=True, desc=f"download {name}"
            ) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(
            f"data.url: cannot download {url} ({reason}); check the network, or place the file by hand at "
            f"{target} (a partial download in {part.name} resumes on the next run)"
        ) from None
    actual = sha256_file(part)
    if actual != sha256.lower():
        part.unlink()
        raise UserError(
            f"data.sha256: checksum mismatch for {url}: expected {sha256}, got {actual}; "
            "the download was deleted: check data.url and data.sha256"
        )
    part.rename(target)
    return target


def _unsafe(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (len(name) > 1 and name[1] == ":")


def extract(archive: Path, dest: Path) -> Path:
    """Extract a .zip/.tar/.tgz/.tar.gz into dest, refusing members that would land outside it; return dest.

    tar: tarfile's 'data' filter (absolute names are made relative, '..', outside links and devices refused);
    zip: zipfile has no such filter and rewrites bad names silently, so its members are checked here first.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    lower = archive.name.lower()
    if lower.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if _unsafe(info.filename) or is_link:
                    raise UserError(f"{archive.name}: unsafe member '{info.filename}' (absolute path, '..' or a "
                                    "link); refusing to extract this archive")
            zf.extractall(dest)
    elif lower.endswith((".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")):
        with tarfile.open(archive) as tf:
            try:  # Python's data filter: no '..', no links or paths escaping dest, no device files
                tf.extractall(dest, filter="data")
            except tarfile.FilterError as err:
                shutil.rmtree(dest)
                raise UserError(f"{archive.name}: unsafe member ({err}); refusing to extract this archive") from None
    else:
        raise UserError(f"{archive.name}: unsupported archive type; expected .zip, .tar, .tgz, .tar.gz")
    return dest


def single_root(tree: Path) -> Path:
    """An archive that holds one top-level folder (flower_photos/...) is read from inside that folder."""
    entries = [p for p in tree.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else tree
