#!/usr/bin/env bash
# Set up, then train SLMRec on the offline MovieLens-100k demo; extra arguments go to run_recbole.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/run_recbole --model=SLMRec --dataset=ml-100k-mm "$@"
