"""compare: one table, charts and the Markdown/HTML report over every model in params.yaml 'models:'."""

from pathlib import Path

from imageclf import comparison, params
from imageclf.errors import UserError, cli

REPORTS = Path("reports")


@cli
def main() -> None:
    p = params.load(("models", "seeds", "evaluate", "compare"))
    models = params.model_names(p["models"])
    if not models:
        raise UserError("params.yaml: 'models' lists no model (models.scratch and models.transfer are both empty)")
    frame = comparison.write(models, REPORTS, p["evaluate"]["split"], p["compare"]["alpha"],
                             p["compare"]["target_val_accuracy"], p["seeds"])
    print(comparison.markdown_table(frame))
    print(f"compare: wrote {REPORTS / 'report.html'} and {REPORTS / 'report.md'}")


if __name__ == "__main__":
    main()
