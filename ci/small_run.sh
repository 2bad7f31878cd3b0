#!/usr/bin/env bash
# The small pipeline run CI makes on a commit: a data subset, short training, two models. Deterministic, so an
# unchanged commit gives the same metrics every time.
set -euo pipefail
export PATH="$PWD/.venv/bin:$PATH"  # the stages' `python` is the project's venv
dvc exp run -S data.max_per_class=300 -S train_defaults.epochs=3 -S 'models.scratch=[lenet5,mlp]' -S 'models.transfer=[]'
