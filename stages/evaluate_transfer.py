"""evaluate_transfer: score one trained transfer model (`python -m stages.evaluate_transfer <name>`)."""

from imageclf.errors import cli
from stages.evaluate import run


@cli
def main() -> None:
    import imageclf.transfer  # noqa: F401  (registers the layers a transfer model.keras holds, for loading)

    run("evaluate_transfer")


if __name__ == "__main__":
    main()
