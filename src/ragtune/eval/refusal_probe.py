"""Fitting the refusal probe (`generation.probe`) on a run's training examples.

Each example's prompt is run once through the tuned model (its passages fitted into
max_length as eval fits them), keeping the hidden state at the answer start of every second
layer from a third of the depth on: the layers where a probe separated SQuAD 2.0's
unanswerable questions best (benchmarks/RESULTS.md; the first third never did). A logistic
regression on the standardised state (scikit-learn, L2 strength `C`) is cross-validated on
each, with the folds split by document (`Example.group`), so no document's questions are
on both sides; the layer with the best mean AUC is refitted on all examples.

The probe is fitted on training examples and the threshold on the held-out split: the
held-out split is too small (40 English questions in the 2,000-example benchmark run) to
fit hundreds of weights, and it stays unseen by both the adapter and the probe.

    probe = fit(generator, train_examples, PromptConfig(), max_length=640)
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from ragtune.config import ConfigError
from ragtune.example import Example
from ragtune.generation.probe import RefusalProbe
from ragtune.prompt.grounded import PromptConfig, build_messages

C = 0.01
"""L2 strength of the logistic regression (scikit-learn's C: smaller = stronger). On the
Qwen-0.5B run in RESULTS.md, 0.001 and 0.01 were within a point of each other under
cross-validation by document, and 0.1 was 2-5 points worse."""
FOLDS = 5
CHUNK = 64
"""Prompts per `answer_states` call: the progress bar's step."""
MIN_PER_KIND = 20
"""Fewer training examples of a kind and no probe is fitted: 5 folds need a few of each."""


def check_sklearn() -> None:
    """scikit-learn fits the probe: a clear error naming the key when it is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ConfigError(
            "calibrate.probe: needs scikit-learn (pip install scikit-learn), or set "
            "calibrate.probe=false"
        ) from None


def check_kinds(examples: Sequence[Example], source: str = "training examples") -> None:
    """Enough training examples of each kind to fit a probe, or a ConfigError: training
    checks this before it starts, not after hours of it."""
    n_un = sum(not e.answerable for e in examples)
    if min(n_un, len(examples) - n_un) < MIN_PER_KIND:
        raise ConfigError(
            f"calibrate.probe: {len(examples) - n_un} answerable and {n_un} unanswerable "
            f"{source}; the probe needs {MIN_PER_KIND} of each "
            "(augment.unanswerable_share=0.3 makes unanswerable ones)"
        )


def check_can_fit(examples: Sequence[Example], source: str) -> None:
    """Both checks, before any model loads or any step trains: scikit-learn is there and
    `examples` (described by `source`, for the error) hold enough of each kind."""
    check_sklearn()
    check_kinds(examples, source)


def candidate_layers(layer_count: int) -> list[int]:
    """Every second `hidden_states` index from a third of the depth to the last."""
    return list(range(layer_count // 3, layer_count, 2))


def fit(
    generator: Any,
    examples: Sequence[Example],
    prompt: PromptConfig,
    max_length: int = 1024,
    max_examples: int = 2000,
    seed: int = 0,
    max_new_tokens: int = 48,
) -> RefusalProbe:
    """The probe for `generator` (a local engine: it needs hidden states), fitted on up to
    `max_examples` of `examples` (drawn with `seed`; unanswerable ones, the scarcer kind,
    make up to half, more only when answerable ones run short)."""
    import numpy as np
    import torch

    check_sklearn()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ragtune.eval.answer import fit_questions

    if not hasattr(generator, "answer_states"):
        raise ConfigError(
            f"calibrate.probe: {generator.name} gives no hidden states (a local transformers "
            "model does); set calibrate.probe=false"
        )
    t0 = time.perf_counter()
    chosen = _draw(examples, max_examples, seed)
    check_kinds(chosen)
    n_un = sum(not e.answerable for e in chosen)
    questions, _ = fit_questions(generator, chosen, prompt, max_length, max_new_tokens)
    layers = candidate_layers(generator.layer_count)
    messages = [build_messages(q.question, q.passages, prompt) for q in questions]
    chunks = range(0, len(messages), CHUNK)  # one forward pass each: minutes for a 0.5B model
    states = np.concatenate(
        [
            generator.answer_states(messages[i : i + CHUNK], layers).numpy()
            for i in tqdm(chunks, desc="refusal probe: hidden states", unit="chunk")
        ]
    )
    y = np.array([0 if e.answerable else 1 for e in chosen])
    groups = [e.group or e.id for e in chosen]
    split_by = "document"
    if len(set(groups)) < 2:  # one document: nothing to split by but the questions
        groups, split_by = [e.id for e in chosen], "question"
    # Stratified: each fold keeps both kinds, so none is skipped for holding only one.
    k = min(FOLDS, len(set(groups)))
    folds = list(
        StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(states, y, groups)
    )

    def model() -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))

    cv: dict[str, float | None] = {}  # str keys: the info goes through JSON
    for j, layer in enumerate(layers):
        aucs = []
        for train, test in folds:
            if len(set(y[train])) < 2 or len(set(y[test])) < 2:
                continue  # a fold of one kind scores nothing
            clf = model().fit(states[train, j], y[train])
            aucs.append(_auc(y[test], clf.predict_proba(states[test, j])[:, 1]))
        cv[str(layer)] = round(float(np.mean(aucs)), 2) if aucs else None
    scored = {k: v for k, v in cv.items() if v is not None}
    if not scored:
        raise ConfigError("calibrate.probe: no fold held both kinds of question; add documents")
    best = int(max(scored, key=lambda layer: scored[layer]))
    clf = model().fit(states[:, layers.index(best)], y)
    scaler, reg = clf[0], clf[1]
    return RefusalProbe(
        layer=best,
        mean=torch.tensor(scaler.mean_, dtype=torch.float32),
        scale=torch.tensor(scaler.scale_, dtype=torch.float32),
        weight=torch.tensor(reg.coef_[0], dtype=torch.float32),
        bias=float(reg.intercept_[0]),
        info={
            "fitted_on": len(chosen),
            "unanswerable": n_un,
            "C": C,
            "cv_auc_by_layer": cv,
            "cv_auc": scored[str(best)],  # the best of the layers tried: a little high
            "folds": f"{len(folds)}, split by {split_by}",
            "fit_s": round(time.perf_counter() - t0, 1),  # hidden states and scikit-learn
        },
    )


def _draw(examples: Sequence[Example], n: int, seed: int) -> list[Example]:
    """Up to `n` examples, unanswerable ones first (the scarcer kind), in a seeded order."""
    rng = random.Random(seed)
    un = [e for e in examples if not e.answerable]
    ans = [e for e in examples if e.answerable]
    rng.shuffle(un)
    rng.shuffle(ans)
    un = un[: max(n // 2, n - len(ans))]
    return un + ans[: n - len(un)]


def _auc(y: Any, score: Any) -> float:
    from sklearn.metrics import roc_auc_score

    return 100 * float(roc_auc_score(y, score))
