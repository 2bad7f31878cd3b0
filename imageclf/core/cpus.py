"""How many worker processes a parallel step uses."""

import os


def workers(requested: int = 0) -> int:
    """requested, or every core when 0."""
    return requested or os.cpu_count() or 1
