"""python -m imageclf.models: every family with its hyperparameters and defaults (Markdown)."""

from imageclf.models.registry import listing

print(listing())
