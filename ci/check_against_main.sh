#!/usr/bin/env bash
# Regression check against main: the same small run on origin/main (in a worktree) is the baseline.
# Run after ci/small_run.sh; exits 1 on a regression and leaves the table in reports/check.md.
set -euo pipefail
repo=$(pwd)
base=$(mktemp -d)/main
git fetch --quiet origin main
git worktree add --force --detach "$base" origin/main
ln -sfn "$repo/.venv" "$base/.venv"
(cd "$base" && bash "$repo/ci/small_run.sh" && "$repo/.venv/bin/python" -m stages.check --save "$repo/reports/baseline-main.json")
git worktree remove --force "$base"
.venv/bin/python -m stages.check --baseline reports/baseline-main.json
