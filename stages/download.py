"""download: read the dataset source named in params.data into data/raw (image tree zip + manifest)."""

from imageclf.core import params
from imageclf.core.errors import cli
from imageclf.data import ingest, sources


@cli
def main() -> None:
    summary = ingest.download(params.load({"data": sources.PARAMS})["data"])
    print(f"download: {summary['images']} images in {summary['classes']} classes, {summary['skipped']} skipped "
          f"(see reports/data/skipped.csv), {summary['duplicate_groups']} groups of identical images")


if __name__ == "__main__":
    main()
