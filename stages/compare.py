"""compare: one table, charts and the Markdown/HTML report over every model in params.yaml 'models:'."""

from pathlib import Path

from imageclf import comparison, params
from imageclf.errors import UserError, cli

REPORTS = Path("reports")


@cli
def main() -> None:
    p = params.load(("models", "evaluate"))
    if not isinstance(p["models"], list) or not p["models"] or not all(isinstance(m, str) for m in p["models"]):
        raise UserError(f"params.yaml: 'models' must be a non-empty list of entry names, got {p['models']!r}")
    frame = comparison.write(p["models"], REPORTS, p["evaluate"]["split"])
    print(comparison.markdown_table(frame))
    print(f"compare: wrote {REPORTS / 'report.html'} and {REPORTS / 'report.md'}")


if __name__ == "__main__":
    main()
