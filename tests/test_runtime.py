"""Runtime choices: CPU accounting for the free-core thread count, dtype names, the section."""

from __future__ import annotations

import pytest
import torch

from ragtune import runtime
from ragtune.config import ConfigError, load_config
from ragtune.runtime import RuntimeSection, parse_cpu_times, pick_dtype, thread_count

STAT = """cpu  300 50 20 500 10 0 0 0 0 0
cpu0 100 0 10 80 10 0 0 0 0 0
cpu1 0 50 10 240 0 0 0 0 0 0
intr 12345
"""


def test_niced_and_idle_time_count_as_free() -> None:
    # cpu0: user 100 + system 10 busy of 200; cpu1: only niced (50) and system (10) work
    assert parse_cpu_times(STAT) == [(110, 200), (10, 300)]


def _fake_cpu(monkeypatch: pytest.MonkeyPatch, busy_cores: list[float], cores: int = 4) -> None:
    """Two /proc/stat samples 100 jiffies apart, each core busy for the given fraction."""
    samples = iter(
        [[(0, 0)] * cores, [(round(100 * b), 100) for b in busy_cores]],
    )
    monkeypatch.setattr(runtime, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(runtime, "allowed_cores", lambda: cores)
    monkeypatch.setattr(runtime.time, "sleep", lambda s: None)


@pytest.mark.parametrize(
    ("busy", "free"),
    [([0, 0, 0, 0], 4), ([1.0, 0, 0, 0], 3), ([0.9, 0.9, 0.1, 0], 2), ([1, 1, 1, 1], 1)],
)
def test_auto_threads_counts_the_idle_cores(
    monkeypatch: pytest.MonkeyPatch, busy: list[float], free: int
) -> None:
    _fake_cpu(monkeypatch, busy)
    assert thread_count("auto") == free


def test_explicit_threads_and_dtypes() -> None:
    assert thread_count(3) == 3
    before = torch.get_num_threads()
    try:
        runtime.set_torch_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert pick_dtype("fp32", "cpu") == (torch.float32, None)
    assert pick_dtype("bf16", "cpu") == (torch.bfloat16, None)
    with pytest.raises(ValueError, match="dtype must be"):
        pick_dtype("int3", "cpu")


def test_resolve_changes_no_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    rt = runtime.resolve(RuntimeSection(device="cpu", dtype="fp32", threads=1))
    assert (rt.device, rt.dtype, rt.threads) == ("cpu", torch.float32, 1)
    assert torch.get_num_threads() == before


def test_runtime_section_keys_are_checked() -> None:
    assert load_config(RuntimeSection, overrides=["threads=2"]).threads == 2
    assert load_config(RuntimeSection, overrides=["threads=auto"]).threads == "auto"
    with pytest.raises(ConfigError, match="threads"):
        load_config(RuntimeSection, overrides=["threads=0"])
    with pytest.raises(ConfigError, match="dtype"):
        load_config(RuntimeSection, overrides=["dtype=int8"])
