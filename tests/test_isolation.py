"""Tests do not depend on one another: each starts from Keras' default global state, and the suite can be run
reversed or shuffled (conftest's --order) to show it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

LEAKY = '''
def test_a_training_sets_global_state():  # what imageclf.train.fit does in-process
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy("mixed_float16")


def test_b_starts_from_the_defaults():
    import keras
    from tensorflow.python.framework import config

    assert keras.mixed_precision.global_policy().name == "float32"
    assert not config.is_op_determinism_enabled()


def test_c(): pass


def test_d(): pass
'''


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(folder)],
                          capture_output=True, text=True, cwd=folder)


def suite(tmp_path: Path) -> Path:
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    return tmp_path


def test_a_test_that_trains_leaves_no_global_keras_state_to_the_next(tmp_path):
    done = pytest_in(suite(tmp_path))
    assert done.returncode == 0 and "4 passed" in done.stdout, done.stdout[-3000:]


def test_the_order_option_reverses_or_shuffles_the_same_way_on_every_collection(tmp_path):
    def ids(*args: str) -> list[str]:
        done = pytest_in(tmp_path, "--collect-only", *args)
        assert done.returncode == 0, done.stdout[-2000:]
        return [line.split("::")[-1] for line in done.stdout.splitlines() if "::" in line]

    suite(tmp_path)
    given = ids()
    assert given == ["test_a_training_sets_global_state", "test_b_starts_from_the_defaults", "test_c", "test_d"]
    assert ids("--order", "reverse") == given[::-1]
    shuffled = ids("--order", "shuffle", "--order-seed", "1")
    assert sorted(shuffled) == sorted(given) and shuffled != given
    assert ids("--order", "shuffle", "--order-seed", "1") == shuffled
