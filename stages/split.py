"""split: assign the manifest's images to train/val/test; write split lists, class index, counts and charts."""

import json
from pathlib import Path

from imageclf import params, plots, rawtree, splitting
from imageclf.errors import cli

RAW = Path("data/raw")
OUT = Path("data/split")
REPORTS = Path("reports/data")


@cli
def main() -> None:
    p = params.load(("data", "split", "evaluate"))
    manifest = rawtree.read_manifest(RAW / "manifest.csv")
    lists = json.loads((RAW / "split_lists.json").read_text())
    s = p["split"]
    result = splitting.split(manifest, lists, s["fractions"], s["seed"], p["data"]["max_per_class"], s["drop_leaked"])
    splitting.check_usable(result.splits, p["evaluate"]["split"])
    OUT.mkdir(parents=True, exist_ok=True)
    REPORTS.mkdir(parents=True, exist_ok=True)
    classes = manifest.drop_duplicates("label").sort_values("label")["class_name"].tolist()
    (OUT / "classes.json").write_text(json.dumps({"classes": classes}, indent=1, ensure_ascii=False) + "\n")
    counts = {}
    for name, frame in result.splits.items():
        frame[["path", "label", "class_name", "id", "hash"]].to_csv(OUT / f"{name}.csv", index=False)
        per_class = {c: int((frame["label"] == i).sum()) for i, c in enumerate(classes)}
        counts[name] = {"total": len(frame), **per_class}
        plots.class_counts(per_class, f"{name}: {len(frame)} images", REPORTS / f"class_counts_{name}.png")
    counts["leaked"] = int(result.leakage["hash"].nunique()) if len(result.leakage) else 0
    counts["excluded"] = len(result.excluded)
    (REPORTS / "class_counts.json").write_text(json.dumps(counts, indent=1, ensure_ascii=False) + "\n")
    result.leakage.to_csv(REPORTS / "leakage.csv", index=False)
    result.excluded.to_csv(REPORTS / "split_excluded.csv", index=False)
    for note in result.notes:
        print(f"split: {note}")
    sizes = ", ".join(f"{k} {v['total']}" for k, v in counts.items() if isinstance(v, dict))
    print(f"split: {sizes}; {counts['leaked']} images shared across splits (reports/data/leakage.csv)")


if __name__ == "__main__":
    main()
