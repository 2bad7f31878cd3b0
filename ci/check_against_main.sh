#!/usr/bin/env bash
# Regression check against main: the same small run on origin/main (in a worktree) is the baseline.
# Run after ci/small_run.sh. Two gates: the tolerance rules of params.yaml check.rules (reports/check.md) and the
# paired test of each model's predictions against main's on the same images (reports/check-paired.md).
set -euo pipefail
repo=$(pwd)
base=$(mktemp -d)/main
git fetch --quiet origin main
git worktree add --force --detach "$base" origin/main
ln -sfn "$repo/.venv" "$base/.venv"
# the baseline runs main's own stages; the metrics are read by this checkout's tool (PYTHONSAFEPATH: not main's copy)
(cd "$base" && bash "$repo/ci/small_run.sh" \
   && PYTHONSAFEPATH=1 "$repo/.venv/bin/python" -m imageclf.cli.check --save "$repo/reports/baseline-main.json")
status=0
.venv/bin/python -m imageclf.cli.check --baseline reports/baseline-main.json || status=1
.venv/bin/python -m imageclf.cli.check --paired --baseline "$base" || status=1
git worktree remove --force "$base"
exit $status
