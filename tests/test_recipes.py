"""Every dataset recipe of docs/datasets.md, read from the page itself, runs `dvc repro` on a small generated fixture
of that layout: through `prepare`, where the layout ends (every image in its class, the prepared cache's classes),
and the folder recipe on through training to the report. Only the dataset location and the training budget are
changed."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, base_params, make_csv_tree, make_folder_tree, make_lego_tree, pattern_image
from test_pipeline import git, scratch_repo, stages_run

FMNIST = Path("/usr/share/datasets/fashion-mnist")
DATA_STAGES = ["download", "split", "prepare"]  # what a layout changes; the stages after it read the prepared cache
# features and audit run and find nothing to do: no transfer model, and tests turn the audit off (tests/conftest.py)
ALL_STAGES = [*DATA_STAGES, "features", "audit", "train@m1", "evaluate@m1", "compare"]


def doc_recipes() -> dict[str, dict]:
    """Title -> params of each ```yaml block in docs/datasets.md, section 'Pointing it at your dataset'."""
    text = (ROOT / "docs/datasets.md").read_text()
    section = text.split("## Pointing it at your dataset", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"\*\*([^*]+)\*\*(?:(?!\*\*).)*?```yaml\n(.*?)```", section, re.S)
    return {title: yaml.safe_load(body) for title, body in blocks}


def recipe(title: str, **data) -> dict:
    """Base params + the docs recipe + the fixture's location, with a one-epoch tiny model."""
    params = base_params()
    for section, values in doc_recipes()[title].items():
        params[section].update(values)
    params["data"].update(data)
    params["models"] = {"scratch": ["m1"], "transfer": []}
    params["features"] = {}
    params["train"] = {"m1": {"family": "lenet5", "filters": [4, 8], "dense": [8]}}
    params["train_defaults"].update(epochs=1, batch_size=8)
    params["prepare"]["workers"] = 2
    return params


def repro(tmp_path: Path, params: dict, pythonpath: str = "", target: str = "prepare") -> subprocess.CompletedProcess:
    repo = scratch_repo(tmp_path, params)
    (repo / "data/downloads").mkdir(parents=True)
    (repo / "data/downloads/.gitkeep").touch()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    return subprocess.run([sys.executable, "-m", "dvc", "repro", target], cwd=repo, capture_output=True, text=True,
                          env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(repo.parent),
                               "DVC_NO_ANALYTICS": "1", "PYTHONPATH": f"{repo}:{pythonpath}".rstrip(":")})


def assert_layout(result: subprocess.CompletedProcess, tmp_path: Path, classes: dict[str, int],
                  stages: list[str] = DATA_STAGES) -> None:
    """The run went through these stages and every image reached its class (counts over all splits)."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert stages_run(result.stdout) == stages
    counts = {split: c for split, c in json.loads((tmp_path / "repo/reports/data/class_counts.json").read_text())
              .items() if isinstance(c, dict)}  # (besides the splits: leaked and excluded counts)
    assert {"leaked": 0, "excluded": 0}.items() <= json.loads(
        (tmp_path / "repo/reports/data/class_counts.json").read_text()).items()
    found = {name: sum(split.get(name, 0) for split in counts.values()) for name in classes}
    assert found == classes and sum(split["total"] for split in counts.values()) == sum(classes.values())
    assert sorted(json.loads((tmp_path / "repo/data/prepared/meta.json").read_text())["classes"]) == sorted(classes)


def test_the_readme_has_a_recipe_for_every_source():
    sources = {r["data"]["source"] for r in doc_recipes().values()}
    labels = {r["data"].get("labels", "folder") for r in doc_recipes().values()}
    assert sources == {"fashion-mnist", "elpv", "folder", "url", "kaggle"} and labels == {"folder", "csv", "regex"}


def test_folder_per_class_to_the_report(tmp_path):
    root = make_folder_tree(tmp_path / "flower_photos", {"daisy": 6, "rose": 6, "tulip": 6})
    assert_layout(repro(tmp_path, recipe("A folder per class", path=str(root)), target="compare"), tmp_path,
                  {"daisy": 6, "rose": 6, "tulip": 6}, ALL_STAGES)
    report = (tmp_path / "repo/reports/report.html").read_text()
    assert "<h2>m1</h2>" in report and "data:image/png;base64," in report


def test_annotation_csv(tmp_path):
    root = make_csv_tree(tmp_path / "pics", ["cat", "dog"], per_class=6)
    assert_layout(repro(tmp_path, recipe("An annotation CSV", path=str(root))), tmp_path, {"cat": 6, "dog": 6})


def test_lego_file_names_with_a_validation_list(tmp_path):
    """The layout of the first user report: a flat folder plus validation.txt, no test list."""
    root = make_lego_tree(tmp_path / "dataset", {"3003": "brick 2x2", "3004": "brick 1x2", "3020": "plate 2x4"},
                          per_class=8, validation=2)
    assert_layout(repro(tmp_path, recipe("File names", path=str(root))), tmp_path,
                  {"3003 brick 2x2": 8, "3004 brick 1x2": 8, "3020 plate 2x4": 8})
    split = tmp_path / "repo/data/split"
    listed = set((root / "validation.txt").read_text().splitlines())
    val = {line.split(",")[0] for line in (split / "val.csv").read_text().splitlines()[1:]}
    test = [line.split(",")[0] for line in (split / "test.csv").read_text().splitlines()[1:]]
    assert val == listed  # validation.txt is kept exactly
    assert len(test) == 3 and not set(test) & listed  # test is carved from the unlisted images, one per class


class _Archive(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self):  # noqa: N802 (http.server API)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args):
        pass


def test_archive_url_served_on_loopback(tmp_path):
    import io
    import tarfile

    tree = make_folder_tree(tmp_path / "src", {"daisy": 6, "rose": 6})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(tree, arcname="flower_photos")
    _Archive.payload = buf.getvalue()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Archive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/flower_photos.tgz"
        params = recipe("An archive URL", url=url, sha256=hashlib.sha256(_Archive.payload).hexdigest())
        assert params["data"]["path"] == "data/downloads"  # the docs' own cache folder
        assert_layout(repro(tmp_path, params), tmp_path, {"daisy": 6, "rose": 6})
    finally:
        server.shutdown()


def test_elpv_layout_of_the_package(tmp_path):
    """A stand-in elpv_dataset package of 24 cells (the real one has 2,624) with the real package's file layout."""
    package = tmp_path / "site/elpv_dataset"
    (package / "data/images").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    rows = []
    for i in range(24):
        label = i % 4
        pattern_image(label, i, 40, "L").save(package / f"data/images/cell{i:04d}.png")
        rows.append(f"images/cell{i:04d}.png {label / 3:.6f} {'mono' if i % 2 else 'poly'}")
    (package / "data/labels.csv").write_text("\n".join(rows) + "\n")
    params = recipe("elpv")
    assert params["prepare"]["image_size"] == 128 and params["split"]["fractions"]["test"] == 0.15
    assert_layout(repro(tmp_path, params, pythonpath=str(tmp_path / "site")), tmp_path,
                  {"0.00": 6, "0.33": 6, "0.67": 6, "1.00": 6})
    assert "cell_type" in (tmp_path / "repo/data/raw/manifest.csv").read_text().splitlines()[0]


def test_elpv_recipe_splits_as_the_elpv_benchmark():
    """The elpv recipe of docs/datasets.md + its `dvc exp run` line reproduce the elpv table of docs/benchmarks.md
    only on the split the benchmark measured it on."""
    spec = importlib.util.spec_from_file_location("elpv_transfer", ROOT / "bench/elpv_transfer.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert doc_recipes()["elpv"]["split"]["fractions"] == bench.SPLIT


@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make test installs it)")
def test_fashion_mnist_from_the_debian_package(tmp_path):
    params = recipe("Fashion-MNIST")
    params["data"]["max_per_class"] = 12  # the only extra: a 70,000-image run does not belong in the test suite
    result = repro(tmp_path, params)
    counts = yaml.safe_load((tmp_path / "repo/reports/data/class_counts.json").read_text())
    classes = [c for c in counts["train"] if c != "total"]
    assert len(classes) == 10 and "Ankle boot" in classes
    assert_layout(result, tmp_path, {c: sum(counts[s][c] for s in ("train", "val", "test")) for c in classes})
    assert counts["train"]["total"] == 120 and counts["val"]["total"] > 0
    assert counts["test"]["total"] > 0  # the official test set, scaled down
    test = (tmp_path / "repo/data/split/test.csv").read_text().splitlines()[1:]
    assert all(line.startswith("test/") for line in test)


def test_kaggle_without_credentials_stops_at_download_with_one_line(tmp_path):
    result = repro(tmp_path, recipe("Kaggle"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    line = next(x for x in result.stderr.splitlines() if x.startswith("error: "))
    assert line.startswith("error: data.source 'kaggle' (joosthazelzet/lego-brick-images) needs Kaggle credentials")
    assert stages_run(result.stdout) == ["download"]
