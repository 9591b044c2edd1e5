#!/usr/bin/env bash
# Set up (if needed) and run the checks: ruff, mypy, and the default test suite (offline, CPU,
# tiny models it builds itself). Extra arguments go to pytest, e.g. `-m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The web-page test drives a real headless Chromium: Debian's chromium + chromium-driver
# (never a browser download). Installed here when missing and apt is there.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "test.sh: no apt-get; install chromium and chromedriver for the web-page test" >&2
  fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy src benchmarks
.venv/bin/python -m pytest -q "$@"
