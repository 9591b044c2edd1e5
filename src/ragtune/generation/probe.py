"""A refusal probe: a linear read-out of the model's hidden state at the start of its answer,
used as the refusal score in place of P(refusal start) when a run has one.

On SQuAD 2.0's adversarial unanswerable questions the probability the model gives to starting
its refusal separates them from answerable ones poorly (AUC ~70% for a tuned
Qwen2.5-Coder-0.5B), while a logistic regression on one middle layer's hidden state at the
same position separates them better (~78% on the same questions; benchmarks/RESULTS.md):
the model represents more about answerability than its next-token choice shows (Slobodkin et
al. 2023, "The curious case of hallucinatory (un)answerability"). The probe is fitted on the
training examples (`eval.refusal_probe`), saved beside the adapter or a full fine-tune's
weights, and loaded with them; the refusal threshold is then calibrated on its scores.

    probe = RefusalProbe.load("runs/x/adapter")      # None when the run has none
    scores = probe.score(hidden_states[probe.layer][:, -1])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune import atomic
from ragtune.errors import RagtuneError

PROBE_FILE = "ragtune_refusal_probe.safetensors"
"""Written by calibration into the adapter folder (or a full fine-tune's model folder)."""


@dataclass(frozen=True)
class RefusalProbe:
    layer: int
    """Index into the model's `hidden_states` (0: the embeddings, i: after block i)."""
    mean: Any
    """Per-dimension mean of the fitting states (a float32 tensor of the hidden size)."""
    scale: Any
    """Per-dimension standard deviation of the same (never 0)."""
    weight: Any
    """Logistic-regression weights on the standardised state: higher = unanswerable."""
    bias: float
    """Its intercept."""
    info: dict[str, Any] = field(default_factory=dict)
    """How it was fitted (examples, per-layer cross-validated AUC, regularisation): shown
    to users and kept in the file, never read back into the score."""

    def score(self, states: Any) -> list[float]:
        """P(unanswerable) for each row of `states` (rows, hidden size), any dtype/device."""
        import torch

        h = states.detach().float().cpu()
        if h.shape[-1] != self.weight.shape[0]:
            raise RagtuneError(
                f"refusal probe: fitted on hidden size {self.weight.shape[0]}, the model "
                f"has {h.shape[-1]}; recalibrate the run (ragtune calibrate RUN)"
            )
        logits = ((h - self.mean) / self.scale) @ self.weight + self.bias
        return [float(p) for p in torch.sigmoid(logits)]

    def digest(self) -> str:
        """SHA-256 of what the score depends on: the calibration record keeps it, so a probe
        refitted after the threshold was chosen is caught, never read against it."""
        import hashlib

        h = hashlib.sha256(f"{self.layer} {self.bias!r}".encode())
        for t in (self.mean, self.scale, self.weight):
            h.update(t.detach().float().contiguous().numpy().tobytes())
        return h.hexdigest()

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save

        tensors = {"mean": self.mean, "scale": self.scale, "weight": self.weight}
        meta = {"layer": str(self.layer), "bias": repr(self.bias), "info": json.dumps(self.info)}
        path = Path(folder) / PROBE_FILE
        atomic.write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}, meta))
        return path

    @classmethod
    def load(cls, folder: str | Path | None) -> RefusalProbe | None:
        """The probe saved in `folder`, or None when it has none (or is not a folder)."""
        if not folder:
            return None
        path = Path(folder) / PROBE_FILE
        if not path.is_file():
            return None
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                t = {k: f.get_tensor(k).float() for k in ("mean", "scale", "weight")}
            return cls(
                int(meta["layer"]),
                t["mean"],
                t["scale"],
                t["weight"],
                float(meta["bias"]),
                json.loads(meta.get("info") or "{}"),
            )
        except (KeyError, ValueError, OSError, SafetensorError) as e:
            raise RagtuneError(f"{path}: not a ragtune refusal probe ({e}); recalibrate") from None


def remove(folder: str | Path) -> None:
    """Drop a folder's probe (a calibration without one must not leave an old probe to score
    against its threshold)."""
    (Path(folder) / PROBE_FILE).unlink(missing_ok=True)
