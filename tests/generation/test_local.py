"""The generation path: batched local decoding and an OpenAI-compatible endpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from ragtune.generation.local import LocalGenerator, stop_token_ids
from ragtune.models import load_model
from ragtune.prompt.grounded import render_prompt

MSG = [
    {"role": "system", "content": "Answer."},
    {"role": "user", "content": "Where is the Eiffel Tower?"},
]
MSG2 = [{"role": "system", "content": "Answer."}, {"role": "user", "content": "Who? " * 20}]


def test_batched_equals_one_by_one(tiny_model_dir: Path) -> None:
    model, tok = load_model(str(tiny_model_dir))
    batched = LocalGenerator(model, tok, max_new_tokens=6, batch_size=2, name="t").generate(
        [MSG, MSG2]
    )
    single = LocalGenerator(model, tok, max_new_tokens=6, batch_size=1, name="t")
    one = [single.generate([m])[0] for m in (MSG, MSG2)]
    assert [g.text for g in batched] == [g.text for g in one]  # left padding changes nothing
    # and both equal transformers' own generate, one prompt at a time (no prefilled cache)
    for g, m in zip(batched, (MSG, MSG2)):
        enc = tok(render_prompt(tok, m), return_tensors="pt", add_special_tokens=False)
        ref = model.generate(
            **enc, max_new_tokens=6, do_sample=False, eos_token_id=stop_token_ids(tok, model.config)
        )
        text = tok.decode(ref[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        assert g.text == text
    assert all(g.batch_size == 2 and 0 <= g.new_tokens <= 6 for g in batched)
    assert any(g.new_tokens > 0 for g in batched)  # the comparison is over real text


def test_prefill_fills_the_cache_without_padding_work(tiny_model_dir: Path) -> None:
    model, tok = load_model(str(tiny_model_dir))
    gen = LocalGenerator(model, tok, max_new_tokens=4, batch_size=2, name="t")
    rows = [tok(render_prompt(tok, m), add_special_tokens=False)["input_ids"] for m in (MSG, MSG2)]
    ids, mask, cache = gen._prefill(rows)
    width = max(len(r) for r in rows)
    assert ids.shape == mask.shape == (2, width)
    assert mask.sum(-1).tolist() == [len(r) for r in rows]
    assert mask[:, -1].all() and ids[:, -1].tolist() == [r[-1] for r in rows]  # left padded
    assert cache is not None and cache.get_seq_length() == width - 1  # all but the last token
    # each row's cached keys equal those of that row run alone, after its padding
    short = 0 if len(rows[0]) < len(rows[1]) else 1
    alone = model(input_ids=torch.tensor([rows[short][:-1]]), use_cache=True).past_key_values
    pad = width - len(rows[short])
    got = cache.layers[0].keys[short, :, pad:]
    assert torch.allclose(got, alone.layers[0].keys[0], atol=1e-6)
    assert got.shape[-2] == len(rows[short]) - 1


def test_lm_head_gets_fresh_strides_from_a_frozen_model(tiny_model_dir: Path) -> None:
    # A merged adapter's weights are frozen; a last-position slice with the sequence's batch
    # stride then sends torch's matmul down a path that copies the head's weight per row.
    model, tok = load_model(str(tiny_model_dir))
    model.requires_grad_(False)
    gen = LocalGenerator(model, tok, max_new_tokens=3, batch_size=2, name="t")
    LocalGenerator(model, tok, max_new_tokens=3, batch_size=2, name="t")  # hook added once
    head = model.get_output_embeddings()
    assert len(head._forward_pre_hooks) == 1
    given: list[tuple[int, ...]] = []  # what the model hands the head, before the hook
    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []  # what the head gets
    head.register_forward_pre_hook(lambda _m, args: given.append(args[0].stride()), prepend=True)
    head.register_forward_pre_hook(lambda _m, args: seen.append((args[0].shape, args[0].stride())))
    gen.generate([MSG, MSG2], refusals=["I cannot tell.", "I cannot tell."])
    fresh = [torch.empty(shape).stride() for shape, _ in seen]
    assert any(g != f for g, f in zip(given, fresh, strict=True))  # the strided slice came
    assert [stride for _, stride in seen] == fresh
    # only the strides change: the last position's logits equal those without the hook
    ids = tok(render_prompt(tok, MSG), return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        hooked = model(input_ids=ids, logits_to_keep=1).logits
        head._forward_pre_hooks.clear()
        plain = model(input_ids=ids, logits_to_keep=1).logits
    assert torch.equal(hooked, plain)
