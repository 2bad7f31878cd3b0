"""url source (resumable, checksum-verified download; safe extraction) and params validation."""

from __future__ import annotations

import hashlib
import http.server
import io
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, base_params, make_folder_tree

from imageclf.cache import settings as prepare_settings
from imageclf.core import params
from imageclf.core.errors import UserError
from imageclf.data import archive, sources, splitting
from imageclf.evaluate import settings as evaluate_settings
from imageclf.report import metric_gate


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one payload on 127.0.0.1, honouring 'Range: bytes=N-' like real file hosts."""

    payload = b""
    ranges: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        start = 0
        if "Range" in self.headers:
            self.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def url_for(payload: bytes, name: str) -> str:
        RangeHandler.payload, RangeHandler.ranges = payload, []
        return f"http://127.0.0.1:{server.server_port}/{name}"

    yield url_for
    server.shutdown()


def tgz_of(tree: Path, top: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(tree, arcname=top)
    return buf.getvalue()


def test_url_source_downloads_verifies_and_reads_the_tree(project, tmp_path, serve):
    payload = tgz_of(make_folder_tree(tmp_path / "src", {"daisy": 3, "rose": 3}), "flower_photos")
    sha = hashlib.sha256(payload).hexdigest()
    project.params["data"].update(source="url", url=serve(payload, "flower_photos.tgz"), sha256=sha,
                                  path=str(tmp_path / "cache"))
    project.run("download")
    manifest = (project.path / "data/raw/manifest.csv").read_text()
    assert "daisy/img 000.png" in manifest  # the single top folder flower_photos/ is descended into


def test_download_resumes_a_partial_file(tmp_path, serve):
    payload = bytes(range(256)) * 400
    sha = hashlib.sha256(payload).hexdigest()
    url = serve(payload, "data.zip")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"{sha[:12]}-data.zip.part").write_bytes(payload[:30_000])
    path = archive.fetch(url, sha, cache)
    assert path.read_bytes() == payload
    assert RangeHandler.ranges == ["bytes=30000-"]
    archive.fetch(url, sha, cache)  # cached: no second request
    assert RangeHandler.ranges == ["bytes=30000-"]


def test_checksum_mismatch_deletes_the_download(tmp_path, serve):
    url = serve(b"not what you expected", "data.tgz")
    with pytest.raises(UserError, match=r"data.sha256: checksum mismatch .* expected 0{64}"):
        archive.fetch(url, "0" * 64, tmp_path)
    assert not list(tmp_path.iterdir())


def test_offline_download_fails_with_a_clear_message(tmp_path):
    with pytest.raises(UserError, match=r"data.url: cannot download .* place the file by hand"):
        archive.fetch("http://127.0.0.1:9/x.tgz", "a" * 64, tmp_path)


def _zip_with(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok/a.txt", "fine")
        zf.writestr(name, "evil")
    return buf.getvalue()


def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.addfile(member, io.BytesIO(data) if data else None)
    return buf.getvalue()


# Archives are built inside the test, never at collection: their headers carry the clock, and pytest-xdist workers
# must collect identical test ids.
UNSAFE_ARCHIVES = {
    "dotdot.zip": lambda: _zip_with("../escape.txt"),
    "absolute.zip": lambda: _zip_with("/etc/evil.txt"),
    "dotdot.tgz": lambda: _tar_with(_tar_member("a/../../escape.txt", size=4), b"evil"),
    "symlink.tgz": lambda: _tar_with(_tar_member("link", tarfile.SYMTYPE, "/etc/passwd")),
    "hardlink.tgz": lambda: _tar_with(_tar_member("link", tarfile.LNKTYPE, "../../outside")),
    "device.tgz": lambda: _tar_with(_tar_member("dev", tarfile.CHRTYPE)),
}


def _tar_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, size
    return info


@pytest.mark.parametrize("name", sorted(UNSAFE_ARCHIVES))
def test_unsafe_archives_are_refused(tmp_path, name):
    packed = tmp_path / name
    packed.write_bytes(UNSAFE_ARCHIVES[name]())
    with pytest.raises(UserError, match=f"{name}: unsafe member"):
        archive.extract(packed, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_an_absolute_tar_member_lands_inside_the_target(tmp_path):
    packed = tmp_path / "absolute.tgz"
    packed.write_bytes(_tar_with(_tar_member(str(tmp_path / "evil.txt"), size=4), b"evil"))
    out = archive.extract(packed, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert (out / str(tmp_path / "evil.txt").lstrip("/")).read_text() == "evil"


def test_link_inside_the_tree_is_allowed(tmp_path):
    packed = tmp_path / "ok.tgz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.addfile(_tar_member("d/real.txt", size=2), io.BytesIO(b"hi"))
        tf.addfile(_tar_member("d/alias.txt", tarfile.SYMTYPE, "real.txt"))
    packed.write_bytes(buf.getvalue())
    out = archive.extract(packed, tmp_path / "out")
    assert (out / "d/alias.txt").read_text() == "hi"


# --- params ----------------------------------------------------------------------------------------------------


def write(tmp_path: Path, mutate) -> Path:
    p = base_params()
    mutate(p)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


SECTIONS = {"data": sources.PARAMS, "split": splitting.PARAMS, "prepare": prepare_settings.PARAMS,
            "evaluate": evaluate_settings.PARAMS, "check": metric_gate.PARAMS, "models": params.MODELS,
            "seeds": params.SEEDS}


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda p: p["data"].update(source="imagenet"), r"'data.source' must be one of fashion-mnist, .*got 'imagenet'"),
    (lambda p: p["data"].update(sourse="folder"), r"unknown key 'data.sourse' \(did you mean 'data.source'\?\)"),
    (lambda p: p["prepare"].pop("color"), r"missing key 'prepare.color'"),
    (lambda p: p["prepare"].update(image_size="big"), r"'prepare.image_size' must be"),
    (lambda p: p["prepare"].update(image_size=[28]), r"'prepare.image_size' must be auto, an integer >= 8 or"),
    (lambda p: p["prepare"].update(workers=-1), r"'prepare.workers' must be >= 0"),
    (lambda p: p["split"].update(drop_leaked="yes"), r"'split.drop_leaked' must be true/false"),
    (lambda p: p["split"].update(fractions={"train": 0.5, "val": 0.2}), r"exactly the keys train, val, test"),
    (lambda p: p["split"].update(fractions={"train": 0.5, "val": 0.2, "test": 0.2}), r"must sum to 1"),
    (lambda p: p["data"].update(source="url"), r"data.source is 'url' but 'data.url' is not set"),
    (lambda p: p["data"].update(source="url", url="http://x/a.tgz", sha256="abc"), r"64 hex characters"),
    (lambda p: p["data"].update(labels="csv"), r"'data.labels_csv' .* is not set"),
    (lambda p: p["data"].update(min_per_class=True), r"'data.min_per_class' must be an integer"),
    (lambda p: p.pop("split"), r"missing section 'split'"),
    (lambda p: p["evaluate"].update(domain_shift={"data": {"source": "folder"}}),
     r"'evaluate.domain_shift' must be null or have exactly the keys class_map, data, max_per_class"),
    (lambda p: p["evaluate"].update(domain_shift={"data": {}, "class_map": {}, "max_per_class": None}),
     r"'evaluate.domain_shift' needs class_map: a mapping"),
    (lambda p: p["check"].update(rules=[]), r"'check.rules' must list at least one rule"),
    (lambda p: p["models"].update(scratch=["lenet5", "lenet5"]), r"'models.scratch' must be a list of distinct"),
    (lambda p: p["seeds"].update(scratch=["lenet5_ref"]),
     r"seeds.scratch lists lenet5_ref, not in models.scratch; seeded runs repeat listed models: add it to "
     r"models.scratch"),
    (lambda p: p["seeds"].update(transfer=["cnn_bn"]), r"seeds.transfer lists cnn_bn, not in models.transfer"),
    (lambda p: p["seeds"].update(values=[1, 1]), r"'seeds.values' must be a list of distinct integers >= 0"),
    (lambda p: p["seeds"].update(values=[]), r"'seeds.values' must be a list of distinct integers"),
])
def test_bad_params_are_one_clear_line(tmp_path, mutate, message):
    with pytest.raises(UserError, match=message) as err:
        params.load(SECTIONS, write(tmp_path, mutate))
    assert "\n" not in str(err.value)


def test_broken_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  source: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML at line"):
        params.load({"data": sources.PARAMS}, path)


def test_stage_cli_prints_one_line_and_exits_2(tmp_path):
    write(tmp_path, lambda p: p["data"].update(source="folder", path=str(tmp_path / "missing")))
    result = subprocess.run([sys.executable, "-m", "stages.download"], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: data.path: {tmp_path / 'missing'} is not a directory "
                                                  "(data.source is 'folder')"]


def test_an_entry_in_the_wrong_models_group_is_one_line_before_training(project):
    """docs/training.md: a transfer entry under models.scratch (or the reverse) is named with the group it belongs
    to; nothing is read or trained first (no prepared data exists here)."""
    project.params["train"]["tl"] = {"family": "transfer", "features": "efficientnet_lite0"}
    with pytest.raises(UserError, match=r"'tl' is a transfer entry; list it under models.transfer, not models.scratch"):
        project.run("train tl")
    with pytest.raises(UserError, match=r"'lenet5' is a lenet5 entry; list it under models.scratch, not models.tr"):
        project.run("train_transfer lenet5")
    assert not (project.path / "models").exists()
