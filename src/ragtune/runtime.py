"""Where and how tensors run: device, dtype and CPU thread count, chosen from the machine.

On CPU, bf16 is 1.5-3x faster than fp32 where the processor has bf16 instructions, and the
thread count must match the cores that are actually free: two threads on a machine whose
other core is busy run about 10x slower than one thread.

    device = pick_device("auto"); threads = set_threads("auto"); dtype = pick_dtype("auto", device)
"""

from __future__ import annotations

import os
import time

import torch


def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available on this machine")
    return device


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX), so bf16 beats fp32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    """ "auto": bf16 on CUDA with bf16 support and on CPUs with bf16 instructions, else fp32."""
    names = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if dtype != "auto":
        if dtype not in names:
            raise ValueError(f"dtype must be auto, bf16, fp16 or fp32, got {dtype!r}")
        return names[dtype]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def parse_cpu_times(stat: str) -> list[tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat text; busy excludes niced (low-priority) time."""
    out = []
    for line in stat.splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            # user nice system idle iowait ...: niced work yields to us, so it counts as free
            vals = [int(v) for v in line.split()[1:]]
            free = vals[1] + vals[3] + (vals[4] if len(vals) > 4 else 0)
            out.append((sum(vals) - free, sum(vals)))
    return out


def _cpu_times() -> list[tuple[int, int]]:
    with open("/proc/stat", encoding="ascii") as f:
        return parse_cpu_times(f.read())


def free_cores(sample_s: float = 0.3) -> int:
    """Cores of this process's CPU set that were idle (or running only niced work) over a
    short sample, at least 1. A core busy at normal priority would halve our speed and worse:
    torch's threads wait on each other, so one slow thread stalls them all."""
    allowed = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    try:
        a = _cpu_times()
        time.sleep(sample_s)
        b = _cpu_times()
    except (OSError, ValueError, IndexError):
        return allowed
    busy = sum(
        (b1 - b0) / max(1, t1 - t0) for (b0, t0), (b1, t1) in zip(a, b)
    )  # in cores, e.g. 0.9 = one core nearly busy
    return max(1, min(allowed, round(allowed - busy)))


def set_threads(threads: int | str = "auto") -> int:
    """Set torch's intra-op threads: a number, or "auto" for the cores free right now."""
    n = free_cores() if threads == "auto" else int(threads)
    if n < 1:
        raise ValueError(f"threads must be >= 1 or 'auto', got {threads!r}")
    torch.set_num_threads(n)
    return n
