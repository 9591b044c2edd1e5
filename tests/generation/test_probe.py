"""The refusal probe: its score by hand, its file, and the local engine reading it from the
hidden state at the answer start, batched or not."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ragtune.errors import RagtuneError
from ragtune.generation.load import GenerateConfig, load_generator, probe_path
from ragtune.generation.local import LocalGenerator
from ragtune.generation.probe import PROBE_FILE, RefusalProbe, remove
from ragtune.prompt.grounded import PromptConfig, build_messages, render_prompt


def _probe(dim: int, layer: int = 1, seed: int = 0) -> RefusalProbe:
    g = torch.Generator().manual_seed(seed)
    return RefusalProbe(
        layer=layer,
        mean=torch.randn(dim, generator=g),
        scale=torch.rand(dim, generator=g) + 0.5,
        weight=torch.randn(dim, generator=g),
        bias=-0.3,
        info={"fitted_on": 7},
    )


def test_score_by_hand() -> None:
    p = RefusalProbe(
        layer=0,
        mean=torch.tensor([1.0, -2.0]),
        scale=torch.tensor([2.0, 0.5]),
        weight=torch.tensor([0.5, -1.0]),
        bias=0.25,
    )
    h = torch.tensor([[3.0, -1.0], [1.0, -2.0]], dtype=torch.bfloat16)
    # row 0: z = (1, 2); 0.5*1 - 1*2 + 0.25 = -1.25. row 1: z = 0, logit 0.25
    expected = [1 / (1 + math.exp(1.25)), 1 / (1 + math.exp(-0.25))]
    assert p.score(h) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(RagtuneError, match="hidden size 2, the model has 3"):
        p.score(torch.zeros(1, 3))


def test_file_round_trip_and_removal(tmp_path: Path) -> None:
    assert RefusalProbe.load(tmp_path) is None and RefusalProbe.load(None) is None
    p = _probe(8, layer=3)
    path = p.save(tmp_path)
    assert path == tmp_path / PROBE_FILE
    back = RefusalProbe.load(tmp_path)
    assert back is not None and back.layer == 3 and back.bias == p.bias
    assert back.info == {"fitted_on": 7}
    for name in ("mean", "scale", "weight"):
        assert torch.equal(getattr(back, name), getattr(p, name))
    remove(tmp_path)
    assert not path.exists()
    remove(tmp_path)  # nothing to remove: no error
    path.write_bytes(b"not safetensors")
    with pytest.raises(RagtuneError, match="not a ragtune refusal probe"):
        RefusalProbe.load(tmp_path)


def _by_hand_state(gen: LocalGenerator, messages: list, layer: int) -> torch.Tensor:
    ids = gen.tokenizer(render_prompt(gen.tokenizer, messages), add_special_tokens=False)
    with torch.inference_mode():
        out = gen.model(input_ids=torch.tensor([ids["input_ids"]]), output_hidden_states=True)
    return out.hidden_states[layer][0, -1]


def test_engine_scores_refusals_with_the_probe(tiny_model_dir: Path) -> None:
    """Each row's score is the probe applied to its prompt's last hidden state, computed here
    by one plain forward pass: through the batched, left-padded, cached path too."""
    from ragtune.models import load_model

    model, tok = load_model(str(tiny_model_dir))
    probe = _probe(model.config.hidden_size, layer=2)
    gen = LocalGenerator(model, tok, max_new_tokens=3, batch_size=3, name="tiny", probe=probe)
    cfg = PromptConfig()
    batch = [
        build_messages(q, [c], cfg)
        for q, c in [
            ("Where is it?", "It is in Paris."),
            ("Who founded Marlowe Station?", "Marlowe Station was founded by Ada Quill. " * 3),
            ("Who is the mayor?", "A town."),
        ]
    ]
    gens = gen.generate(batch, refusals=[cfg.refusal_en] * 3)
    states = torch.stack([_by_hand_state(gen, m, 2) for m in batch])
    assert [g.refusal_score for g in gens] == pytest.approx(probe.score(states), abs=1e-4)
    # the padded path (models whose cache cannot be merged row by row) reads the same state
    prefill = gen._prefill
    gen._prefill = lambda rows: (*prefill(rows)[:2], None)  # type: ignore[method-assign]
    kept: list[list[int]] = []  # which layers' states each forward pass handed back
    hook = gen.model.register_forward_hook(
        lambda _m, _a, out: kept.append(
            [i for i, h in enumerate(out.hidden_states or ()) if h is not None]
        )
    )
    padded = gen.generate(batch, refusals=[cfg.refusal_en] * 3)
    hook.remove()
    gen._prefill = prefill  # type: ignore[method-assign]
    # the whole padded batch's states are kept for the probe's layer only
    assert [2] in kept and all(k in ([], [2]) for k in kept)
    assert [g.refusal_score for g in padded] == pytest.approx(probe.score(states), abs=1e-4)
    got = gen.answer_states(batch, [0, 2])
    assert got.shape == (3, 2, model.config.hidden_size)
    assert torch.allclose(got[:, 1], states, atol=1e-5)
    # without the probe the score is P(refusal start) again, a different number
    gen.probe = None
    plain = gen.generate(batch, refusals=[cfg.refusal_en] * 3)
    assert [g.refusal_score for g in plain] != pytest.approx([g.refusal_score for g in gens])
    assert gen.layer_count == model.config.num_hidden_layers + 1


def test_loaded_with_the_adapter_unless_asked_not_to(
    tiny_model_dir: Path, make_tiny_adapter, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    make_tiny_adapter(tiny_model_dir, run / "adapter")
    cfg = GenerateConfig(model=str(tiny_model_dir), adapter=str(run))
    assert probe_path(cfg) is None
    assert load_generator(cfg).probe is None  # type: ignore[attr-defined]
    _probe(32, layer=1).save(run / "adapter")
    assert probe_path(cfg) == run / "adapter" / PROBE_FILE
    loaded = load_generator(cfg).probe  # type: ignore[attr-defined]
    assert loaded is not None and loaded.layer == 1
    start = GenerateConfig(model=str(tiny_model_dir), adapter=str(run), refusal_score="start")
    assert probe_path(start) is None
    assert load_generator(start).probe is None  # type: ignore[attr-defined]
    # llama.cpp and API models cannot read hidden states: never theirs
    assert probe_path(GenerateConfig(model="x.gguf", backend="llamacpp")) is None
    assert probe_path(GenerateConfig(model="openai:gpt-4o-mini", adapter=str(run))) is None
