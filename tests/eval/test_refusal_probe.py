"""Fitting the refusal probe: the layer that separates best under cross-validation, its
draw of examples, and the probe carried from training through calibration into eval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from ragtune.cli import main
from ragtune.config import ConfigError
from ragtune.eval import refusal_probe
from ragtune.eval import stage as evaluate
from ragtune.example import Example, write_jsonl
from ragtune.generation import abstain
from ragtune.generation.load import GenerateConfig
from ragtune.generation.probe import PROBE_FILE, RefusalProbe
from ragtune.prompt.grounded import PromptConfig
from ragtune.train import stage as train
from tests.eval.test_calibrate import _examples  # tower questions, every second unanswerable


class SignalOnOneLayer:
    """A stand-in engine whose hidden states are noise, except that one layer's first
    dimension is +1 for unanswerable questions ("Who built") and -1 for answerable ones."""

    name = "fake"
    layer_count = 13  # candidates: 4, 6, 8, 10, 12

    def __init__(self, signal_layer: int) -> None:
        self.signal_layer = signal_layer
        self.asked: list[list[int]] = []

    def answer_states(self, batch: list[Any], layers: list[int]) -> torch.Tensor:
        self.asked.append(layers)
        g = torch.Generator().manual_seed(0)
        states = torch.randn(len(batch), len(layers), 6, generator=g)
        for i, messages in enumerate(batch):
            sign = 1.0 if "Who built" in messages[-1]["content"] else -1.0
            states[i, layers.index(self.signal_layer), 0] += 3 * sign
        return states


def test_fit_picks_the_layer_that_separates() -> None:
    engine = SignalOnOneLayer(signal_layer=8)
    probe = refusal_probe.fit(engine, _examples("t", 60), PromptConfig())
    assert engine.asked == [[4, 6, 8, 10, 12]]
    assert probe.layer == 8
    cv = probe.info["cv_auc_by_layer"]
    assert cv["8"] == probe.info["cv_auc"] == max(cv.values()) and cv["8"] > 95
    assert all(cv[k] < 80 for k in ("4", "6", "10", "12"))  # noise: near chance
    assert probe.info["folds"] == "5, split by document"
    assert probe.info["fitted_on"] == 60 and probe.info["unanswerable"] == 30
    # scores new states the way the signal says
    h = torch.zeros(2, 6)
    h[:, 0] = torch.tensor([3.0, -3.0])
    high, low = probe.score(h)
    assert high > 0.5 > low


def test_draw_keeps_the_scarce_kind_and_the_cap() -> None:
    exs = [e for e in _examples("t", 200) if e.answerable] + _examples("u", 20)[1::2]
    drawn = refusal_probe._draw(exs, 50, seed=1)
    assert len(drawn) == 50 and sum(not e.answerable for e in drawn) == 10
    assert refusal_probe._draw(exs, 50, seed=1) == drawn  # seeded
    assert len(refusal_probe._draw(exs, 10_000, seed=1)) == len(exs)
    # unanswerable ones the larger kind: half of the draw, more only if answerable run short
    many = _examples("u", 100)[1::2] + _examples("a", 40)[::2]  # 50 and 20
    assert sum(not e.answerable for e in refusal_probe._draw(many, 30, seed=1)) == 15
    assert sum(not e.answerable for e in refusal_probe._draw(many, 50, seed=1)) == 30


def test_fit_refuses_too_few_or_an_engine_without_states() -> None:
    few = _examples("t", 60)[: 2 * refusal_probe.MIN_PER_KIND - 2]
    with pytest.raises(ConfigError, match="calibrate.probe: 19 answerable and 19 unanswerable"):
        refusal_probe.fit(SignalOnOneLayer(8), few, PromptConfig())

    class NoStates:
        name = "api"

    with pytest.raises(ConfigError, match="api gives no hidden states"):
        refusal_probe.fit(NoStates(), _examples("t", 60), PromptConfig())


def test_training_fits_the_probe_and_eval_scores_with_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_train_cfg: Any
) -> None:
    from ragtune.data.augment import AugmentSection
    from ragtune.eval import calibrate
    from ragtune.generation.load import refusal_threshold

    # answerable only: the unanswerable ones are made by augment, as most users would
    towns = [f"Town{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(48)]
    write_jsonl(
        tmp_path / "train.jsonl",
        [
            Example(f"t{i}", f"Where is tower {i}?", [f"Tower {i} is in {t}."], [t], group=f"g{i}")
            for i, t in enumerate(towns)
        ],
    )
    write_jsonl(tmp_path / "held.jsonl", _examples("h", 8))
    cfg = tiny_train_cfg(
        tmp_path,
        eval_data=str(tmp_path / "held.jsonl"),
        max_steps=2,
        augment=AugmentSection(unanswerable_share=0.5),
        calibrate=calibrate.CalibrateSection(probe=True),
    )
    result = train.run(cfg)
    probe = RefusalProbe.load(result.adapter)
    assert probe is not None and probe.info["unanswerable"] >= refusal_probe.MIN_PER_KIND
    assert probe.info["fitted_on"] == 48 + probe.info["unanswerable"]
    saved = abstain.read_calibration(result.adapter)
    assert saved is not None and saved["score"] == "probe"
    assert saved["probe"]["layer"] == probe.layer
    assert saved["probe"]["digest"] == probe.digest()
    assert result.metrics["refusal_calibration"]["score"] == "probe"

    def eval_cfg(out: str) -> evaluate.EvalConfig:
        return evaluate.EvalConfig(
            data=str(tmp_path / "held.jsonl"),
            out=str(tmp_path / out),
            gen=GenerateConfig(model=cfg.model, adapter=str(tmp_path / "run"), max_new_tokens=4),
            runtime=cfg.runtime,
            latency_questions=0,
            semantic=False,
        )

    def evaluate_into(out: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        ev = evaluate.run(eval_cfg(out))
        rows = [json.loads(line) for line in (tmp_path / out / "predictions.jsonl").open()]
        return ev, rows

    ev, rows = evaluate_into("ev")
    assert ev["refusal_score_source"] == f"probe (layer {probe.layer})"
    # the eval's scores are the calibration's: the same probe on the same prompts
    by_id = {r["id"]: r["refusal_score"] for r in saved["scores"]}
    assert {r["id"]: r["refusal_score"] for r in rows} == pytest.approx(by_id, abs=1e-5)

    # calibrating again without the probe removes it: the scores are P(refusal start) again
    args = ["calibrate", str(tmp_path / "run"), "runtime.threads=1", "runtime.dtype=fp32"]
    assert main([*args, "calibrate.probe=false"]) == 0
    assert not (result.adapter / PROBE_FILE).exists()
    again = abstain.read_calibration(result.adapter)
    assert again is not None and again["score"] == "start" and again["probe"] is None
    ev2, rows2 = evaluate_into("ev2")
    assert ev2["refusal_score_source"] == "start"
    assert [r["refusal_score"] for r in rows2] != pytest.approx([r["refusal_score"] for r in rows])
    # calibrated again with the key unset: as the run is, so still no probe
    assert main(args) == 0
    assert not (result.adapter / PROBE_FILE).exists()
    assert abstain.read_calibration(result.adapter)["score"] == "start"  # type: ignore[index]
    # with it again from the command line: fitted on the training side rebuilt as training
    # built it (the same synthetic unanswerables), so the same probe
    assert main([*args, "calibrate.probe=true"]) == 0
    refit = RefusalProbe.load(result.adapter)

    def same_fit(info: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in info.items() if k != "fit_s"}  # its time differs

    assert refit is not None and same_fit(refit.info) == same_fit(probe.info)
    assert isinstance(probe.info["fit_s"], float) and probe.info["fit_s"] >= 0
    # unset again, a new target keeps the probe the run now has (no refitting)
    fits: list[int] = []
    real_fit = refusal_probe.fit
    monkeypatch.setattr(refusal_probe, "fit", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    assert main([*args, "calibrate.max_false_refusal=0.2"]) == 0
    kept = RefusalProbe.load(result.adapter)
    assert fits == [] and kept is not None and kept.info == refit.info
    again = abstain.read_calibration(result.adapter)
    assert again is not None and again["score"] == "probe"
    assert again["target"] == "max_false_refusal=0.2"
    assert again["probe"]["digest"] == kept.digest()  # the threshold is the kept probe's
    threshold = refusal_threshold(eval_cfg("x").gen)
    ident = evaluate.identity(eval_cfg("x"), threshold)
    # a probe refitted after the threshold was chosen: another eval, and refused as stale
    RefusalProbe(refit.layer, refit.mean, refit.scale, refit.weight * 2, refit.bias).save(
        result.adapter
    )
    assert evaluate.identity(eval_cfg("x"), threshold)["inputs"] != ident["inputs"]
    from ragtune.errors import RagtuneError

    with pytest.raises(RagtuneError, match="refitted after .* chose its threshold"):
        refusal_threshold(eval_cfg("x").gen)


def _probed_run(tmp_path: Path, tiny_model_dir: Path, make_tiny_adapter: Any) -> Path:
    """A run folder whose adapter holds a probe (random weights, layer 1) and a calibration
    record that says it was made on the probe's scores."""
    from ragtune.eval import calibrate

    run = tmp_path / "run"
    make_tiny_adapter(tiny_model_dir, run / "adapter")
    g = torch.Generator().manual_seed(3)
    probe = RefusalProbe(1, torch.zeros(32), torch.ones(32), torch.randn(32, generator=g), 0.0)
    probe.save(run / "adapter")
    calibrate.save(run, {"threshold": 0.5, "score": "probe", "probe": {"layer": 1}})
    return run


def test_threshold_and_score_must_match(
    tmp_path: Path, tiny_model_dir: Path, make_tiny_adapter: Any
) -> None:
    """A probe's threshold is never read against P(refusal start), nor the other way round."""
    from ragtune.errors import RagtuneError
    from ragtune.eval import calibrate
    from ragtune.generation.load import refusal_threshold

    run = _probed_run(tmp_path, tiny_model_dir, make_tiny_adapter)
    cfg = GenerateConfig(model=str(tiny_model_dir), adapter=str(run))
    assert refusal_threshold(cfg) == abstain.Threshold(0.5)
    numeric = GenerateConfig(model="m", adapter=str(run), refusal_threshold=0.2)
    assert refusal_threshold(numeric) == abstain.Threshold(0.2)
    start = GenerateConfig(model=str(tiny_model_dir), adapter=str(run), refusal_score="start")
    with pytest.raises(RagtuneError, match="gen.refusal_score=start asks for P"):
        refusal_threshold(start)
    (run / "adapter" / PROBE_FILE).unlink()
    with pytest.raises(RagtuneError, match=f"its {PROBE_FILE} is missing"):
        refusal_threshold(cfg)
    _probed_run(tmp_path / "again", tiny_model_dir, make_tiny_adapter)
    calibrate.save(tmp_path / "again" / "run", {"threshold": 0.5, "score": "start"})
    again = GenerateConfig(model=str(tiny_model_dir), adapter=str(tmp_path / "again" / "run"))
    with pytest.raises(RagtuneError, match="a refusal probe beside a threshold calibrated on P"):
        refusal_threshold(again)


def test_serve_scores_each_adapter_with_its_own_probe(
    tmp_path: Path, tiny_model_dir: Path, make_tiny_adapter: Any, cpu_fp32: Any
) -> None:
    from ragtune.prompt.grounded import build_messages
    from ragtune.serve.pool import ModelPool

    run = _probed_run(tmp_path, tiny_model_dir, make_tiny_adapter)
    plain = tmp_path / "plain"
    make_tiny_adapter(tiny_model_dir, plain / "adapter", seed=2)
    pool = ModelPool.load(
        str(tiny_model_dir), {"probed": str(run), "plain": str(plain)}, cpu_fp32, max_new_tokens=2
    )
    assert pool.entries["probed"].probe is not None and pool.entries["plain"].probe is None
    assert pool.entries["probed"].threshold == abstain.Threshold(0.5)
    cfg = PromptConfig()
    batch = [build_messages("Where is tower 1?", ["Tower 1 is in Paris."], cfg)]
    refusals = [cfg.refusal_en]
    probed = pool.generate("probed", batch, 2, refusals)[0].refusal_score
    plain_score = pool.generate("plain", batch, 2, refusals)[0].refusal_score
    base = pool.generate(str(tiny_model_dir), batch, 2, refusals)[0].refusal_score
    # the probed adapter's score is its probe's reading of its own hidden state
    from ragtune.generation.load import load_generator

    alone = load_generator(GenerateConfig(model=str(tiny_model_dir), adapter=str(run)), cpu_fp32)
    expected = alone.generate(batch, refusals)[0].refusal_score
    assert probed == pytest.approx(expected, abs=1e-4)
    assert pool.generate("probed", batch, 2, refusals)[0].refusal_score == probed  # after others
    # the others score P(refusal start): the probe does not stay set for them
    plain_alone = load_generator(
        GenerateConfig(model=str(tiny_model_dir), adapter=str(plain)), cpu_fp32
    ).generate(batch, refusals)[0]
    base_alone = load_generator(GenerateConfig(model=str(tiny_model_dir)), cpu_fp32).generate(
        batch, refusals
    )[0]
    assert plain_score == pytest.approx(plain_alone.refusal_score, abs=1e-4)
    assert base == pytest.approx(base_alone.refusal_score, abs=1e-4)
    assert probed != pytest.approx(plain_score)


def test_training_refuses_a_probe_it_cannot_fit_before_it_trains(
    tmp_path: Path, tiny_train_cfg: Any
) -> None:
    from ragtune.eval import calibrate

    cfg = tiny_train_cfg(tmp_path, calibrate=calibrate.CalibrateSection(probe=True))
    with pytest.raises(
        ConfigError, match=r"4 answerable and 0 unanswerable training examples in .*train\.jsonl"
    ):
        train.run(cfg)
    assert not (tmp_path / "run" / "adapter").exists()  # stopped before any step


def test_by_default_neither_training_nor_calibrate_fits_a_probe(
    tmp_path: Path, tiny_train_cfg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unset, training calibrates on P(refusal start), and so does `ragtune calibrate` on
    such a run, even when its training file has moved; calibrate.probe=true needs that file
    and stops with the key named."""
    write_jsonl(tmp_path / "held.jsonl", _examples("h", 8))
    cfg = tiny_train_cfg(tmp_path, eval_data=str(tmp_path / "held.jsonl"), max_steps=1)
    result = train.run(cfg)
    assert not (result.adapter / PROBE_FILE).exists()
    record = abstain.read_calibration(result.adapter)
    assert record is not None and record["score"] == "start"
    Path(cfg.data).unlink()
    args = ["calibrate", str(tmp_path / "run"), "runtime.threads=1", "runtime.dtype=fp32"]
    assert main(args) == 0
    assert not (result.adapter / PROBE_FILE).exists()
    capsys.readouterr()
    assert main([*args, "calibrate.probe=true"]) != 0
    assert "probe_data: the run's training data" in capsys.readouterr().err


def test_calibrate_chooses_again_from_the_saved_answers_when_they_still_hold(
    tmp_path: Path, tiny_train_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another target on the same held-out questions, caps and score needs no model: the
    record's answers are decided again. Another answer cap, or a probe to fit, answers anew."""
    from ragtune.eval import calibrate

    write_jsonl(tmp_path / "held.jsonl", _examples("h", 8))
    cfg = tiny_train_cfg(tmp_path, eval_data=str(tmp_path / "held.jsonl"), max_steps=1)
    result = train.run(cfg)
    first = abstain.read_calibration(result.adapter)
    assert first is not None and first["answered"]["max_new_tokens"] == 48
    loads: list[int] = []
    real = calibrate.load_generator
    monkeypatch.setattr(
        calibrate, "load_generator", lambda *a, **k: loads.append(1) or real(*a, **k)
    )
    args = ["calibrate", str(tmp_path / "run"), "runtime.threads=1", "runtime.dtype=fp32"]
    assert main([*args, "calibrate.max_false_refusal=0.0"]) == 0
    again = abstain.read_calibration(result.adapter)
    assert loads == [] and again is not None
    assert again["scores"] == first["scores"] and again["target"] == "max_false_refusal=0.0"
    zero = calibrate.CalibrateSection(max_false_refusal=0.0)
    assert (
        again["threshold"] == calibrate.record_from_rows(first["scores"], zero, None)["threshold"]
    )
    assert again["chosen"]["false_refusal_rate"] == 0
    assert again["answered"]["model"] == cfg.model
    # another base model spec (the same folder, named otherwise): its answers are made again
    assert main([*args, "calibrate.max_false_refusal=0.0", f"model={cfg.model}/."]) == 0
    assert loads == [1]
    assert main([*args, "calibrate.max_false_refusal=0.0"]) == 0  # the default spec again
    assert loads == [1, 1]
    assert main([*args, "calibrate.max_false_refusal=0.1"]) == 0  # the same key: reused
    assert loads == [1, 1]
    # only the compute dtype differs: bf16 answers may differ from fp32 ones, so made again
    assert again["answered"]["dtype"] == "torch.float32"
    bf16 = [*args[:-1], "runtime.dtype=bf16"]
    assert main([*bf16, "calibrate.max_false_refusal=0.1"]) == 0
    assert loads == [1, 1, 1]
    # only the answer cap differs: made again
    assert main([*bf16, "calibrate.max_false_refusal=0.1", "calibrate.max_new_tokens=8"]) == 0
    assert loads == [1, 1, 1, 1]
    recapped = abstain.read_calibration(result.adapter)
    assert recapped is not None and recapped["answered"]["max_new_tokens"] == 8
