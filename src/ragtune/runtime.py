"""Where and how tensors run: device, dtype and CPU thread count, chosen from the machine.

Every stage config has one `runtime` section (`RuntimeSection`: device, dtype, threads), and
`resolve` turns it into plain values once, in the stage's `run`; components take those values,
never the section. Nothing here changes process state except `set_torch_threads`, which a stage
calls itself.

On CPU, bf16 is 1.5-3x faster than fp32 where the processor has bf16 instructions, and the
thread count must match the cores that are actually free: two threads on a machine whose
other core is busy run about 10x slower than one thread.

    rt = resolve(RuntimeSection())        # Runtime(device="cpu", dtype=torch.bfloat16, threads=2)
    set_torch_threads(rt.threads)

torch is imported inside the functions, so configs (and `ragtune --help`) load without it.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

from ragtune import allocator
from ragtune.config import require
from ragtune.errors import RagtuneError

DTYPE_NAMES = ("bf16", "fp16", "fp32")


@dataclass
class RuntimeSection:
    device: str = "auto"
    """auto (CUDA when present, else CPU), cpu, or cuda[:N]."""
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Compute dtype: auto (bf16 on CUDA with bf16 support, else fp16; on a CPU whichever of
    bf16 and fp32 `ragtune.probe` measured faster), bf16, fp16 or fp32."""
    threads: int | Literal["auto"] = "auto"
    """CPU threads: a number, or auto for the cores free right now (a busy core would stall
    every thread)."""

    def __post_init__(self) -> None:
        require(self, "threads", min=1, allow=("auto",))


@dataclass(frozen=True)
class Runtime:
    """A resolved `RuntimeSection`: what the stage's components are given."""

    device: str
    dtype: Any  # torch.dtype
    threads: int
    dtype_probe: dict[str, Any] | None = None
    """How dtype=auto chose on a CPU: the measured GFLOP/s per dtype (`ragtune.probe`)."""
    threads_probe: dict[str, Any] | None = None
    """How threads=auto chose on a CPU: the measured GFLOP/s per thread count."""
    allocator: str = "system"
    """The malloc serving the process: jemalloc or system (`ragtune.allocator`)."""


def torch_dtype(name: str) -> Any:
    """The torch dtype for "bf16", "fp16" or "fp32"."""
    import torch

    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if name not in table:
        raise RagtuneError(f"dtype must be auto, bf16, fp16 or fp32, got {name!r}")
    return table[name]


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RagtuneError(f"device={device!r} but CUDA is not available on this machine")
    if device != "cpu" and not device.startswith(("cuda", "mps", "xpu")):
        raise RagtuneError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    return device


# A 0.5B model's layer (Qwen2.5-0.5B: hidden 896, MLP 4864, 14 heads, 2 KV heads): the shapes
# measured when the caller does not name its model.
DEFAULT_LAYER = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
}


def pick_dtype(
    dtype: str, device: str, model_config: dict[str, Any] | None = None, threads: int = 1
) -> tuple[Any, Any]:
    """(torch dtype, the CPU probe or None). "auto": bf16 on CUDA with bf16 support (else
    fp16); on a CPU, whichever of bf16 and fp32 `ragtune.probe` measured faster at the
    model's layer shapes (cached per machine). An explicit dtype always wins."""
    import torch

    if dtype != "auto":
        return torch_dtype(dtype), None
    if device.startswith("cuda"):
        return (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16), None
    if device != "cpu":
        return torch.float32, None
    from ragtune import probe

    result = probe.choose_dtype(probe.layer_shapes(model_config or DEFAULT_LAYER), threads)
    return torch_dtype(result.choice), result


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


def allowed_cores() -> int:
    """Cores this process may run on (its affinity set, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def free_cores(sample_s: float = 0.3) -> int:
    """Cores of this process's CPU set that were idle (or running only niced work) over a
    short sample, at least 1. A core busy at normal priority would halve our speed and worse:
    torch's threads wait on each other, so one slow thread stalls them all."""
    allowed = allowed_cores()
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


def threads_arg(value: str) -> int | Literal["auto"]:
    """A --threads command-line value: a number of at least 1, or "auto" (argparse `type=`)."""
    import argparse

    if value == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or auto, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 or auto, got {n}")
    return n


def thread_count(threads: int | str = "auto") -> int:
    """A number of threads: `threads` itself, or the cores free right now for "auto"."""
    if threads == "auto":
        return free_cores()
    n = int(threads)
    if n < 1:
        raise RagtuneError(f"threads must be >= 1 or 'auto', got {threads!r}")
    return n


def set_torch_threads(n: int) -> None:
    """Set torch's intra-op thread count (process-wide: only a stage's `run` calls this)."""
    import torch

    torch.set_num_threads(n)


def resolve(section: RuntimeSection, model_config: dict[str, Any] | None = None) -> Runtime:
    """Device, dtype and thread count for a stage, measured once; no process state changes
    (the probes restore torch's thread count). `model_config` (a config.json as a dict)
    gives the layer shapes the probes time; each choice is printed once. On a CPU,
    threads=auto is the free cores, then the count among them that `ragtune.probe` measured
    fastest in the chosen dtype."""
    from ragtune import probe

    device = pick_device(section.device)
    threads = thread_count(section.threads)
    dtype, dprobe = pick_dtype(section.dtype, device, model_config, threads)
    dtype_summary = threads_summary = None
    if dprobe is not None:
        print(f"runtime: {dprobe.summary()}", flush=True)
        dtype_summary = {"choice": dprobe.choice, "gflops": dprobe.gflops, "cached": dprobe.cached}
        dtype_summary["cpu"] = dprobe.key["cpu"]
    if section.threads == "auto" and device == "cpu" and threads > 1:
        name = {torch_dtype("bf16"): "bf16"}.get(dtype, "fp32")
        shapes = probe.layer_shapes(model_config or DEFAULT_LAYER)
        tprobe = probe.choose_threads(shapes, name, threads)
        if tprobe.gflops:
            print(f"runtime: {tprobe.summary()}", flush=True)
            threads = tprobe.choice
            threads_summary = {
                "choice": tprobe.choice,
                "gflops": {str(n): g for n, g in tprobe.gflops.items()},
                "cached": tprobe.cached,
            }
    malloc = allocator.loaded()
    if device == "cpu" and malloc == "system":
        _malloc_hint()
    return Runtime(device, dtype, threads, dtype_summary, threads_summary, malloc)


_hinted = False


def _malloc_hint() -> None:
    """Say once per process how to get jemalloc, where `auto` would use it but the system's
    malloc serves this CPU run (`ragtune.allocator`)."""
    global _hinted
    if _hinted or allocator.choice(os.environ) != "auto":
        return
    _hinted = True
    if not allocator.auto_applies(sys.platform, platform.machine()):
        return
    how = (
        "apt-get install libjemalloc2"
        if allocator.find_jemalloc() is None
        else "it is installed: run `ragtune` or `python -m ragtune` (after `pip install -e .` "
        "in a checkout), or preload it yourself"
    )
    print(
        f"runtime: malloc is the system's; on CPU jemalloc keeps answering fast after training "
        f"and uses less memory ({how}; "
        f"{allocator.ENV}=system to keep this one quietly)",
        flush=True,
    )


def for_stage(section: RuntimeSection, model: str | None = None, local: bool = True) -> Runtime:
    """What a stage's `run` does before loading a model: resolve the runtime, measured at the
    model's own shapes when `local` and `model` is a spec on disk, and give torch the
    thread count on CPU (the stage owns the process)."""
    config = None
    if local and model:
        from ragtune.models import model_config

        config = model_config(model)
    rt = resolve(section, config)
    if rt.device == "cpu":
        set_torch_threads(rt.threads)
    return rt
