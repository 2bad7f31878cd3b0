"""seed_transfer: a seeded run of one transfer model (`python -m stages.seed_transfer NAME SEED`): see seed.py."""

from imageclf.errors import cli
from stages import train_transfer
from stages.seed import run


@cli
def main() -> None:
    run("seed_transfer", "transfer", train_transfer.train_entry)


if __name__ == "__main__":
    main()
