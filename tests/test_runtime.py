"""Runtime choices: CPU accounting for the free-core thread count, dtype names."""

from __future__ import annotations

import os

import pytest
import torch

from ragtune.runtime import parse_cpu_times, pick_dtype, set_threads

STAT = """cpu  300 50 20 500 10 0 0 0 0 0
cpu0 100 0 10 80 10 0 0 0 0 0
cpu1 0 50 10 240 0 0 0 0 0 0
intr 12345
"""


def test_niced_and_idle_time_count_as_free() -> None:
    # cpu0: user 100 + system 10 busy of 200; cpu1: only niced (50) and system (10) work
    assert parse_cpu_times(STAT) == [(110, 200), (10, 300)]


def test_explicit_threads_and_dtypes() -> None:
    before = torch.get_num_threads()
    try:
        assert set_threads("1") == 1 and torch.get_num_threads() == 1
        assert 1 <= set_threads("auto") <= (os.cpu_count() or 1)
    finally:
        torch.set_num_threads(before)
    assert pick_dtype("fp32", "cpu") == torch.float32
    assert pick_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be"):
        pick_dtype("int3", "cpu")
