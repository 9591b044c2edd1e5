"""GGUF quantization with llama.cpp's own code, through llama-cpp-python (no toolchain to
download or build at run time).

An f16 GGUF goes in, a quantized GGUF comes out. The k-quants (q4_k_m, ...) pack rows in
blocks of 256 values; a tensor whose rows are not a multiple of that falls back, inside
llama.cpp, to a 32-value block type (q5_0, q8_0, ...), so tiny models quantize too.

    quantize(Path("model-f16.gguf"), Path("model-q4_k_m.gguf"), "q4_k_m", threads=2)
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

from ragtune.export import ExportError

# name -> llama_cpp constant; f16 and f32 are written directly by gguf_write, not here.
QUANT_TYPES = {
    "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q3_k_l": "LLAMA_FTYPE_MOSTLY_Q3_K_L",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q3_k_s": "LLAMA_FTYPE_MOSTLY_Q3_K_S",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
}
GGUF_TYPES = ("f32", "f16", *QUANT_TYPES)


def quantize(src: Path, dst: Path, qtype: str, threads: int = 0) -> str | None:
    """Quantize GGUF `src` (f16/f32) into `dst` as `qtype`; threads=0 lets llama.cpp choose.
    Returns llama.cpp's note on tensors that fell back to another type, if any."""
    if qtype not in QUANT_TYPES:
        raise ExportError(
            f"quant: unknown GGUF type {qtype!r}; choose from {', '.join(GGUF_TYPES)}"
        )
    try:
        import llama_cpp
    except ImportError:
        raise ExportError(
            "GGUF quantization needs llama-cpp-python: pip install llama-cpp-python"
        ) from None
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[qtype])
    params.nthread = threads
    # llama.cpp logs a line per tensor: collected instead of printed, quoted when it fails.
    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        lines.append(text.decode("utf-8", errors="replace"))

    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    finally:
        from llama_cpp._logger import llama_log_callback  # llama-cpp-python's own printer

        llama_cpp.llama_log_set(llama_log_callback, ctypes.c_void_p(0))
    text = "".join(lines)
    if rc != 0 or not dst.is_file():
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise ExportError(
            f"{dst.name}: llama.cpp could not quantize {src.name} to {qtype}:\n{tail}"
        )
    fallback = re.search(r"(\d+) of (\d+) tensor\(s\) required fallback", text)
    if fallback:
        return (
            f"{fallback[1]} of {fallback[2]} tensors stored as a 32-value block type "
            "(their rows are not a multiple of 256, which k-quants need)"
        )
    return None
