"""download: read the dataset source named in params.data into data/raw (image tree zip + manifest)."""

from pathlib import Path

from imageclf import params, rawtree, sources
from imageclf.errors import cli

RAW = Path("data/raw")
REPORTS = Path("reports/data")


@cli
def main() -> None:
    data = params.load(("data",))["data"]
    collection = sources.collect(data)
    summary = rawtree.write(collection, RAW, REPORTS, data["max_image_pixels"], data["min_per_class"])
    print(f"download: {summary['images']} images in {summary['classes']} classes, {summary['skipped']} skipped "
          f"(see {REPORTS / 'skipped.csv'}), {summary['duplicate_groups']} groups of identical images")


if __name__ == "__main__":
    main()
