"""`make` picks the TensorFlow build by whether an NVIDIA driver answers; tested with a fake nvidia-smi."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

MAKE = shutil.which("make")


def planned_install(tmp_path: Path, nvidia_smi: str | None, *args: str) -> str:
    """The pip lines `make -n install` would run, with the given nvidia-smi script (None: no nvidia-smi at all)."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    fake = tmp_path / "bin"
    fake.mkdir()
    if nvidia_smi is not None:
        (fake / "nvidia-smi").write_text(f"#!/bin/sh\n{nvidia_smi}\n")
        (fake / "nvidia-smi").chmod(0o755)
    result = subprocess.run([MAKE, "-n", "install", *args], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": str(fake)})
    assert result.returncode == 0, result.stderr
    return "\n".join(line for line in result.stdout.splitlines() if "pip install -q -r" in line)


@pytest.mark.skipif(MAKE is None, reason="needs make")
@pytest.mark.parametrize(("nvidia_smi", "args", "build"), [
    ('echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)"', (), '"tensorflow[and-cuda]==2.21.0"'),
    ('echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver" >&2; exit 9', (),
     '"tensorflow-cpu==2.21.0"'),
    (None, (), '"tensorflow-cpu==2.21.0"'),
    ('echo "GPU 0: NVIDIA H100"', ("TF=tensorflow-cpu",), '"tensorflow-cpu==2.21.0"'),
    (None, ("TF=tensorflow[and-cuda]",), '"tensorflow[and-cuda]==2.21.0"'),
])
def test_the_install_picks_the_tensorflow_build_by_the_driver(tmp_path, nvidia_smi, args, build):
    line = planned_install(tmp_path, nvidia_smi, *args)
    assert line.endswith(f"pip install -q -r requirements-dev.txt {build}"), line


def test_the_requirements_pin_no_tensorflow_build():
    names = [line.split("==")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert not {"tensorflow", "tensorflow-cpu", "tensorflow-gpu"} & set(names)  # the Makefile chooses the build


def test_dvc_parses_yaml_with_the_c_parser():
    """A no-op `dvc repro` is mostly YAML parsing: without ruamel.yaml.clib it falls back to pure Python (1.6x
    slower; bench/noop_repro.py)."""
    from ruamel.yaml import YAML

    assert YAML(typ="safe").Parser.__module__.startswith("ruamel.yaml.clib")
