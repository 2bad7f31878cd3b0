"""prepare: decode/convert/resize every split into binary shards (data/prepared) and draw the augmentation preview."""

from imageclf.cache import prepare, settings
from imageclf.core import params
from imageclf.core.errors import cli
from imageclf.data import sources


@cli
def main() -> None:
    p = params.load({"data": sources.PARAMS, "prepare": settings.PARAMS})
    meta = prepare.run(p["prepare"], p["data"]["max_image_pixels"])
    sizes = ", ".join(f"{k} {v['count']}" for k, v in meta["splits"].items())
    print(f"prepare: {sizes} records of shape {meta['shape']}; {meta['skipped']} skipped")


if __name__ == "__main__":
    main()
