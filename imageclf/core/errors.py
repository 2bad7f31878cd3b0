"""User-facing errors: one clear line, no traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem the user can fix (bad params, bad files); printed as one line."""


def cli(main: Callable[[], None]) -> Callable[[], None]:
    """Wrap a stage entry point so that a UserError exits with status 2 and a one-line message (and TensorFlow's C++
    start-up chatter stays out of stage logs: stages import it inside main)."""

    @functools.wraps(main)
    def wrapper() -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            main()
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
