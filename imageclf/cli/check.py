"""check (not a DVC stage; CI runs it): fail (exit 1) when a metric regressed against the baseline beyond its
tolerance in params.yaml 'check'.

    python -m imageclf.cli.check                    # baseline from params (a git ref such as main, or a JSON file)
    python -m imageclf.cli.check --baseline HEAD~1  # any git ref or baseline file
    python -m imageclf.cli.check --save FILE        # write the current metrics as a baseline file to commit
    python -m imageclf.cli.check --paired [--baseline REF_OR_DIR]  # fail only when a model's predictions are
                                              # significantly worse than the baseline's (McNemar, compare.alpha)
"""

import argparse
import json
import sys
from pathlib import Path

from imageclf.core import params
from imageclf.core.errors import cli
from imageclf.report import comparison, metric_gate

REPORT = Path("reports/check.md")
PAIRED_REPORT = Path("reports/check-paired.md")


@cli
def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m imageclf.cli.check")
    parser.add_argument("--baseline", help="git ref or baseline JSON (default: params.yaml check.baseline)")
    parser.add_argument("--save", type=Path, help="write the current metrics to this baseline file and stop")
    parser.add_argument("--paired", action="store_true",
                        help="test each model's predictions against the baseline's on the same images instead of "
                             "the tolerance rules (baseline: a git ref, or a directory holding a baseline run)")
    args = parser.parse_args()
    loaded = params.load({"check": metric_gate.PARAMS, "compare": comparison.PARAMS})
    cfg = loaded["check"]
    if args.paired:
        paired(args.baseline or cfg["baseline"], loaded["compare"]["alpha"])
        return
    report = cfg["report"]
    patterns = sorted({str(item.get("files")) for item in [*cfg["rules"], *report]})
    current = metric_gate.current_metrics(patterns)
    if args.save:
        args.save.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        print(f"check: saved {sum(map(len, current.values()))} metrics of {len(current)} files to {args.save}")
        return
    baseline = args.baseline or cfg["baseline"]
    rows = metric_gate.compare(cfg["rules"], metric_gate.baseline_metrics(baseline, patterns), current, report)
    table = metric_gate.markdown(rows)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(f"Metric check against `{baseline}`\n\n{table}\n")
    print(table)
    failed = [r for r in rows if r.verdict not in ("ok", metric_gate.NOT_GATED)]
    gated = [r for r in rows if r.verdict != metric_gate.NOT_GATED]
    print(f"check: {len(gated) - len(failed)} ok, {len(failed)} failed (baseline {baseline}); "
          f"{len(rows) - len(gated)} timings reported, not gated")
    if failed:
        sys.exit(1)


def paired(baseline: str, alpha: float) -> None:
    rows = metric_gate.paired(baseline, alpha)
    table = metric_gate.paired_markdown(rows)
    PAIRED_REPORT.parent.mkdir(parents=True, exist_ok=True)
    PAIRED_REPORT.write_text(f"Paired check against `{baseline}` (McNemar, Holm-adjusted, alpha {alpha})\n\n{table}\n")
    print(table)
    failed = [r for r in rows if r["verdict"] != "ok"]
    print(f"check --paired: {len(rows) - len(failed)} ok, {len(failed)} failed (baseline {baseline})")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
