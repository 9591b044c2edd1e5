"""dtype=auto follows the measured faster dtype; explicit settings win; the measurement is
cached per machine and redone when its key changes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from ragtune import probe, runtime
from ragtune.runtime import RuntimeSection

CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


class FakeTimer:
    """A timing table instead of a clock: GFLOP/s per dtype, and how often it was asked."""

    def __init__(self, table: dict[str, float]):
        self.table, self.calls = table, 0

    def __call__(self, shapes: Sequence[probe.Shape], dtype: str) -> float:
        self.calls += 1
        return self.table[dtype]


def test_layer_shapes_are_the_models_projections() -> None:
    assert probe.layer_shapes(CONFIG, tokens=8) == [
        (8, 64, 64),
        (8, 64, 32),
        (8, 64, 128),
        (8, 128, 64),
    ]


@pytest.mark.parametrize(
    ("table", "choice"),
    [
        ({"bf16": 420.0, "fp32": 200.0}, "bf16"),  # Zen 4/5: bf16 about 2x
        ({"bf16": 136.0, "fp32": 230.0}, "fp32"),  # Xeon with AVX-512 BF16, no AMX
        ({"bf16": 210.0, "fp32": 200.0}, "fp32"),  # a tie keeps the safer fp32
    ],
)
def test_choice_follows_the_faster_dtype(table: dict[str, float], choice: str) -> None:
    result = probe.choose_dtype(probe.layer_shapes(CONFIG), 2, measure_fn=FakeTimer(table))
    assert (result.choice, result.gflops, result.cached) == (choice, table, False)


def test_the_measurement_is_cached_and_redone_when_the_key_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timer = FakeTimer({"bf16": 420.0, "fp32": 200.0})
    shapes = probe.layer_shapes(CONFIG)
    first = probe.choose_dtype(shapes, 2, measure_fn=timer)
    again = probe.choose_dtype(shapes, 2, measure_fn=timer)
    assert timer.calls == 2 and again.cached and again.choice == first.choice  # no second probe
    probe.choose_dtype(shapes, 1, measure_fn=timer)  # other thread count
    assert timer.calls == 4
    monkeypatch.setattr(probe, "cpu_model_name", lambda: "Intel(R) Xeon(R) Platinum")
    assert not probe.choose_dtype(shapes, 2, measure_fn=timer).cached  # another processor
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert not probe.choose_dtype(shapes, 2, measure_fn=timer).cached  # another torch
    assert timer.calls == 8


def test_auto_uses_the_probe_and_an_explicit_dtype_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    slow_bf16 = FakeTimer({"bf16": 100.0, "fp32": 230.0})
    monkeypatch.setattr(probe, "measure", slow_bf16)
    rt = runtime.resolve(RuntimeSection(device="cpu", threads=1), CONFIG)
    assert rt.dtype == torch.float32 and rt.dtype_probe is not None
    assert rt.dtype_probe["gflops"] == {"bf16": 100.0, "fp32": 230.0}
    rt = runtime.resolve(RuntimeSection(device="cpu", dtype="bf16", threads=1), CONFIG)
    assert rt.dtype == torch.bfloat16 and rt.dtype_probe is None and slow_bf16.calls == 2


def test_real_measurement_is_short_and_restores_threads() -> None:
    before = torch.get_num_threads()
    result = probe.choose_dtype(probe.layer_shapes(CONFIG, tokens=16), 1)
    assert result.choice in ("bf16", "fp32") and all(g > 0 for g in result.gflops.values())
    assert torch.get_num_threads() == before
    assert Path(probe._cache_path(result.key)).is_file()


class FakeThreadTimer:
    """GFLOP/s per thread count, read from torch's current setting as `measure` would see it."""

    def __init__(self, table: dict[int, float]):
        self.table, self.calls = table, 0

    def __call__(self, shapes: Sequence[probe.Shape], dtype: str) -> float:
        self.calls += 1
        return self.table[torch.get_num_threads()]


def test_thread_candidates_cover_physical_cores_half_and_one() -> None:
    assert probe.thread_candidates(8, 4) == [1, 4, 8]
    assert probe.thread_candidates(6, 6) == [1, 3, 6]
    assert probe.thread_candidates(2, 2) == [1, 2]
    assert probe.thread_candidates(1, 1) == [1]


@pytest.mark.parametrize(
    ("table", "choice"),
    [
        ({1: 100.0, 2: 190.0, 4: 300.0}, 4),  # every thread pays for itself
        ({1: 100.0, 2: 190.0, 4: 150.0}, 2),  # SMT siblings fight over one core's units
        ({1: 100.0, 2: 102.0, 4: 104.0}, 1),  # within 5%: not worth the cores
    ],
)
def test_thread_choice_follows_the_fastest_count(table: dict[int, float], choice: int) -> None:
    before = torch.get_num_threads()
    timer = FakeThreadTimer(table)
    result = probe.choose_threads(
        probe.layer_shapes(CONFIG), "fp32", 4, physical=2, measure_fn=timer
    )
    assert (result.choice, result.gflops, result.cached) == (choice, table, False)
    assert torch.get_num_threads() == before
    again = probe.choose_threads(
        probe.layer_shapes(CONFIG), "fp32", 4, physical=2, measure_fn=timer
    )
    assert again.cached and again.choice == choice and timer.calls == 3
    probe.choose_threads(probe.layer_shapes(CONFIG), "bf16", 4, physical=2, measure_fn=timer)
    assert timer.calls == 6  # another dtype: measured again


def test_auto_threads_follow_the_probe_and_explicit_threads_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "free_cores", lambda: 2)
    monkeypatch.setattr(probe, "physical_cores", lambda cpus: 2)
    timer = FakeThreadTimer({1: 100.0, 2: 101.0})
    monkeypatch.setattr(probe, "measure", timer)
    rt = runtime.resolve(RuntimeSection(device="cpu", dtype="fp32"), CONFIG)
    assert rt.threads == 1 and rt.threads_probe is not None
    assert rt.threads_probe["gflops"] == {"1": 100.0, "2": 101.0}
    rt = runtime.resolve(RuntimeSection(device="cpu", dtype="fp32", threads=2), CONFIG)
    assert rt.threads == 2 and rt.threads_probe is None and timer.calls == 2


def test_crossover_is_the_last_length_where_eager_still_wins() -> None:
    lengths = [128, 256, 512, 1024]
    assert probe.crossover(lengths, {"eager": [1, 2, 5, 9], "sdpa": [2, 3, 4, 8]}) == 256
    assert probe.crossover(lengths, {"eager": [3, 4, 5, 6], "sdpa": [2, 3, 4, 5]}) == 0
    assert probe.crossover(lengths, {"eager": [1, 1, 1, 1], "sdpa": [2, 2, 2, 2]}) == 1024
    # a later length where eager wins again does not move the switch past a loss
    assert probe.crossover(lengths, {"eager": [1, 5, 1, 1], "sdpa": [2, 2, 2, 2]}) == 128


def test_a_damaged_cache_file_is_measured_over() -> None:
    timer = FakeTimer({"bf16": 420.0, "fp32": 200.0})
    shapes = probe.layer_shapes(CONFIG)
    first = probe.choose_dtype(shapes, 2, measure_fn=timer)
    probe._cache_path(first.key).write_text("{not json", encoding="utf-8")
    assert not probe.choose_dtype(shapes, 2, measure_fn=timer).cached and timer.calls == 4
    assert probe.choose_dtype(shapes, 2, measure_fn=timer).cached
