"""The dtype a CPU computes fastest, measured rather than assumed from its flags.

bf16 matmul is about 2x faster than fp32 on AMD Zen 4/5 (AVX-512 BF16), and slower on an
Intel Xeon with AVX-512 BF16 but no AMX (2048^3: 136 vs 230 GFLOP/s); the flags alone cannot
tell the two apart. So on first use `choose_dtype` times the model's own layer shapes (a
step's tokens through the attention and MLP projections) in bf16 and fp32, for well under a
second each, and picks bf16 only when it is clearly faster. The result is cached under the
ragtune cache, keyed by the CPU model, the thread count, the torch version and the shapes,
so later runs on the same machine reuse it; any change of key measures again.

    probe = choose_dtype(layer_shapes(config), threads=2)
    probe.choice, probe.gflops        # "bf16", {"bf16": 412.0, "fp32": 201.5}
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ragtune import atomic

Shape = tuple[int, int, int]  # (M, K, N): (tokens, in_features) @ (in_features, out_features)
TOKENS = 512  # tokens per matmul: a typical packed training step, or a batch of prompts
BF16_MARGIN = 1.1  # bf16 must be this much faster: fp32 is the numerically safer default
BUDGET_S = 0.3  # measuring time per dtype, after one warm-up pass


@dataclass
class DtypeProbe:
    choice: str
    """ "bf16" or "fp32": what dtype=auto uses on this CPU."""
    gflops: dict[str, float]
    """Measured GFLOP/s per dtype, summed over the shapes."""
    key: dict[str, Any]
    """What the measurement depends on: CPU model, threads, torch version, shapes."""
    cached: bool
    """True when read from the cache, False when measured now."""

    def summary(self) -> str:
        figures = ", ".join(f"{d} {g:.0f}" for d, g in self.gflops.items())
        how = "cached" if self.cached else "measured now"
        return (
            f"dtype auto -> {self.choice} ({figures} GFLOP/s at this model's layer shapes; {how})"
        )


def cpu_model_name() -> str:
    """The processor as lscpu names it ("AMD EPYC", "Intel(R) Xeon(R) ..."), from /proc."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def layer_shapes(config: dict[str, Any], tokens: int = TOKENS) -> list[Shape]:
    """The matmuls of one decoder layer for `tokens` tokens: q/o, k/v, MLP up/gate, down."""
    h = int(config["hidden_size"])
    inter = int(config.get("intermediate_size") or 4 * h)
    heads = int(config.get("num_attention_heads") or 1)
    kv = int(config.get("num_key_value_heads") or heads)
    return [(tokens, h, h), (tokens, h, h * kv // heads), (tokens, h, inter), (tokens, inter, h)]


def measure(shapes: Sequence[Shape], dtype: str, budget_s: float = BUDGET_S) -> float:
    """GFLOP/s of `shapes` in `dtype` on torch's current thread count (2*M*K*N per matmul)."""
    import torch

    tdtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    pairs = [
        (torch.randn(m, k, dtype=tdtype), torch.randn(k, n, dtype=tdtype)) for m, k, n in shapes
    ]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    for a, b in pairs:  # warm-up: first calls pick kernels and allocate
        a @ b
    reps, t0 = 0, time.perf_counter()
    while True:
        for a, b in pairs:
            a @ b
        reps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= budget_s:
            return flops * reps / elapsed / 1e9


def _cache_path(key: dict[str, Any]) -> Path:
    from ragtune.models import cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "probe" / f"dtype-{digest}.json"


def choose_dtype(
    shapes: Sequence[Shape],
    threads: int,
    *,
    measure_fn: Callable[[Sequence[Shape], str], float] | None = None,
) -> DtypeProbe:
    """bf16 or fp32 for these shapes on this CPU: from the cache, or measured (with
    `measure`, unless a `measure_fn` is given) and cached."""
    import torch

    measure_fn = measure_fn or measure
    key = {
        "cpu": cpu_model_name(),
        "threads": threads,
        "torch": torch.__version__,
        "shapes": [list(s) for s in shapes],
    }
    path = _cache_path(key)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("key") == key:
            return DtypeProbe(saved["choice"], saved["gflops"], key, cached=True)
    except (OSError, ValueError, KeyError):
        pass  # none yet, or unreadable: measure
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gflops = {d: round(measure_fn(shapes, d), 1) for d in ("bf16", "fp32")}
    finally:
        torch.set_num_threads(before)
    choice = "bf16" if gflops["bf16"] >= BF16_MARGIN * gflops["fp32"] else "fp32"
    probe = DtypeProbe(choice, gflops, key, cached=False)
    record = {k: v for k, v in asdict(probe).items() if k != "cached"}
    atomic.write_json(path, {**record, "measured_at": time.time(), "pid": os.getpid()})
    return probe
