"""compare: one table, charts and the Markdown/HTML report over every model in params.yaml 'models:'."""

from imageclf.core import params, paths
from imageclf.core.errors import UserError, cli
from imageclf.deploy import settings as export_settings
from imageclf.evaluate import settings as evaluate_settings
from imageclf.report import comparison
from imageclf.report.page import markdown_table


@cli
def main() -> None:
    p = params.load({"models": params.MODELS, "seeds": params.SEEDS, "evaluate": evaluate_settings.PARAMS,
                     "compare": comparison.PARAMS, "export": export_settings.PARAMS})
    models = params.model_names(p["models"])
    if not models:
        raise UserError("params.yaml: 'models' lists no model (models.scratch and models.transfer are both empty)")
    frame = comparison.write(models, paths.REPORTS, p["evaluate"]["split"], p["compare"]["alpha"],
                             p["compare"]["target_val_accuracy"], p["seeds"], p["export"])
    print(markdown_table(frame))
    print(f"compare: wrote {paths.REPORTS / 'report.html'} and {paths.REPORTS / 'report.md'}")


if __name__ == "__main__":
    main()
