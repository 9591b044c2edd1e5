"""The choices a CPU makes fastest, measured rather than assumed from its flags.

bf16 matmul is about 2x faster than fp32 on AMD Zen 4/5 (AVX-512 BF16), and slower on an
Intel Xeon with AVX-512 BF16 but no AMX (2048^3: 136 vs 230 GFLOP/s); the flags alone cannot
tell the two apart. So on first use `choose_dtype` times the model's own layer shapes (a
step's tokens through the attention and MLP projections) in bf16 and fp32, for well under a
second each, and picks bf16 only when it is clearly faster. `choose_threads` then times the
same shapes at a few thread counts (all free cores, one per physical core, half, one), and
`crossover` turns the attention timings of `ragtune.train.attention` into the length where
sdpa starts to beat matmul-softmax. Each result is cached under the ragtune cache
(`cached`), keyed by the CPU model, the thread count, the torch version and what was
measured, so later runs on the same machine reuse it; any change of key measures again.

    probe = choose_dtype(layer_shapes(config), threads=2)
    probe.choice, probe.gflops        # "bf16", {"bf16": 412.0, "fp32": 201.5}
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune import atomic

Shape = tuple[int, int, int]  # (M, K, N): (tokens, in_features) @ (in_features, out_features)
TOKENS = 512  # tokens per matmul: a typical packed training step, or a batch of prompts
BF16_MARGIN = 1.1  # bf16 must be this much faster: fp32 is the numerically safer default
BUDGET_S = 0.3  # measuring time per dtype, after one warm-up pass
THREADS_MARGIN = 1.05  # each extra thread must pay for itself


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


def _cache_path(key: dict[str, Any], kind: str = "dtype") -> Path:
    from ragtune.models import cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "probe" / f"{kind}-{digest}.json"


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to `n` for a measurement, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def machine_key(threads: int) -> dict[str, Any]:
    """What every measurement depends on: the processor, the thread count, the torch build."""
    import torch

    return {"cpu": cpu_model_name(), "threads": threads, "torch": torch.__version__}


def cached(
    kind: str, key: dict[str, Any], compute: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """(record, from_cache): the `kind` measurement ("dtype", "threads", "attention") saved
    for exactly this key, or `compute()` run now and saved. An unreadable or foreign cache
    file is measured over, never trusted."""
    path = _cache_path(key, kind)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("key") == key:
            return saved["record"], True
    except (OSError, ValueError, KeyError, AttributeError):
        pass  # none yet, or unreadable: measure
    record = compute()
    atomic.write_json(
        path, {"key": key, "record": record, "measured_at": time.time(), "pid": os.getpid()}
    )
    return record, False


def choose_dtype(
    shapes: Sequence[Shape],
    threads: int,
    *,
    measure_fn: Callable[[Sequence[Shape], str], float] | None = None,
) -> DtypeProbe:
    """bf16 or fp32 for these shapes on this CPU: from the cache, or measured (with
    `measure`, unless a `measure_fn` is given) and cached."""

    measure_fn = measure_fn or measure
    key = {**machine_key(threads), "shapes": [list(s) for s in shapes]}

    def compute() -> dict[str, Any]:
        with torch_threads(threads):
            gflops = {d: round(measure_fn(shapes, d), 1) for d in ("bf16", "fp32")}
        choice = "bf16" if gflops["bf16"] >= BF16_MARGIN * gflops["fp32"] else "fp32"
        return {"choice": choice, "gflops": gflops}

    record, hit = cached("dtype", key, compute)
    return DtypeProbe(record["choice"], record["gflops"], key, cached=hit)


@dataclass
class ThreadsProbe:
    choice: int
    """The thread count threads=auto uses."""
    gflops: dict[int, float]
    """Measured GFLOP/s per candidate thread count."""
    cached: bool

    def summary(self) -> str:
        figures = ", ".join(f"{n}: {g:.0f}" for n, g in self.gflops.items())
        how = "cached" if self.cached else "measured now"
        return f"threads auto -> {self.choice} (GFLOP/s by thread count {figures}; {how})"


def physical_cores(cpus: Sequence[int]) -> int:
    """How many physical cores the logical CPUs `cpus` sit on (SMT siblings count once)."""
    cores = set()
    for cpu in cpus:
        path = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(path.read_text(encoding="ascii").strip())
        except OSError:
            cores.add(str(cpu))  # no topology: count it as its own core
    return max(1, len(cores))


def thread_candidates(free: int, physical: int) -> list[int]:
    """The counts worth timing: all free cores, one per physical core (SMT siblings share
    one core's matmul units), half, and one."""
    return sorted({free, min(free, physical), max(1, free // 2), 1})


def choose_threads(
    shapes: Sequence[Shape],
    dtype: str,
    free: int,
    *,
    physical: int | None = None,
    measure_fn: Callable[[Sequence[Shape], str], float] | None = None,
) -> ThreadsProbe:
    """The thread count, at most `free`, that computes these shapes fastest in `dtype`.
    More threads than physical cores, or threads that wait on each other, can be slower than
    fewer; a count needs to be 5% faster than the next smaller one to be worth its cores."""

    measure_fn = measure_fn or measure
    if physical is None:
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        physical = physical_cores(allowed) if allowed else free
    candidates = thread_candidates(free, physical)
    if len(candidates) == 1:
        return ThreadsProbe(free, {}, cached=False)
    key = {
        **machine_key(free),
        "physical": physical,
        "dtype": dtype,
        "shapes": [list(s) for s in shapes],
    }

    def compute() -> dict[str, Any]:
        gflops: dict[str, float] = {}
        for n in candidates:
            with torch_threads(n):
                gflops[str(n)] = round(measure_fn(shapes, dtype), 1)
        best = candidates[0]
        for n in candidates[1:]:
            if gflops[str(n)] >= THREADS_MARGIN * gflops[str(best)]:
                best = n
        return {"choice": best, "gflops": gflops}

    record, hit = cached("threads", key, compute)
    gflops = {int(n): g for n, g in record["gflops"].items()}
    return ThreadsProbe(int(record["choice"]), gflops, cached=hit)


def crossover(lengths: Sequence[int], seconds: dict[str, list[float]]) -> int:
    """The longest length up to which `seconds["eager"]` is at most `seconds["sdpa"]` at
    every measured length (0 when sdpa wins from the start): the switch-over point."""
    limit = 0
    for n, eager, sdpa in zip(lengths, seconds["eager"], seconds["sdpa"], strict=True):
        if eager > sdpa:
            break
        limit = n
    return limit
