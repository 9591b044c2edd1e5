#!/usr/bin/env bash
# Set up (if needed) and run the main job offline: base eval -> LoRA fine-tune -> tuned eval.
# Extra arguments go to `ragtune demo` (e.g. --out runs/demo2 epochs=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ragtune demo "$@"
