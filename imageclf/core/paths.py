"""Where the pipeline keeps what it writes (relative to the project root, as in dvc.yaml)."""

from pathlib import Path

SPLITS = ("train", "val", "test")  # every dataset ends with these (split stage)

RAW = Path("data/raw")  # download: images.zip, manifest.csv, split_lists.json
SPLIT = Path("data/split")  # split: <split>.csv, classes.json
PREPARED = Path("data/prepared")  # prepare: shards, <split>.csv, meta.json
FEATURES = Path("data/features")  # features: one folder per set
SEED_RUNS = Path("data/seed_runs")  # seeded models while they train, removed once scored
MODELS = Path("models")  # train: <name>/model.keras, classes.json
EXPORT = Path("export")  # export: the chosen model's files and card
REPORTS = Path("reports")
DATA_REPORTS = REPORTS / "data"
TRAIN_REPORTS = REPORTS / "train"
EVAL_REPORTS = REPORTS / "eval"
SEED_REPORTS = REPORTS / "seeds"
EXPORT_REPORTS = REPORTS / "export"
