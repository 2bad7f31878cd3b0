"""The suite collects the same test ids whenever it is collected: pytest-xdist workers collect separately and refuse
to start when their lists differ (test ids built from archive bytes once carried the clock)."""

import os
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).parent


def _collect() -> list[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           str(TESTS)], capture_output=True, text=True, cwd=TESTS.parent,
                          env={**os.environ, "PYTEST_XDIST_AUTO_NUM_WORKERS": "0"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert ids, done.stdout[-2000:]
    return ids


def test_two_collections_seconds_apart_agree():
    first = _collect()
    time.sleep(2.1)  # zip timestamps have 2-second steps, gzip's mtime 1-second ones
    assert _collect() == first
