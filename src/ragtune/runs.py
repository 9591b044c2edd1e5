"""The run-folder layout every stage writes and reads: one place for the file names.

A training run folder holds `adapter/` (or `model/`), `train_config.yaml`,
`train_metrics.json`, `loss_curve.png` and `checkpoint-N/` folders; an eval folder holds
`metrics.json`, `predictions.jsonl`, the reports and `eval_config.yaml`. Later stages (eval,
export, RAG, serving) find an adapter or a finished eval through these functions, not by
spelling paths themselves.

    adapter_dir("runs/lora")     # "runs/lora/adapter"
    finished("runs/base")        # the metrics dict, or None when the eval has not finished
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ragtune.errors import RagtuneError

ADAPTER = "adapter"  # LoRA adapter folder inside a training run
FULL_MODEL = "model"  # the weights of a full fine-tune inside a training run
TRAIN_CONFIG = "train_config.yaml"
TRAIN_METRICS = "train_metrics.json"
LOSS_CURVE = "loss_curve.png"
EVAL_CONFIG = "eval_config.yaml"
EVAL_METRICS = "metrics.json"
PREDICTIONS = "predictions.jsonl"
PARTIAL_PREDICTIONS = "predictions.partial.jsonl"  # appended while an eval runs; resumable


class RunError(RagtuneError):
    """A folder that is not the run it should be (no adapter, no metrics); names the folder."""


def adapter_dir(path: str | Path) -> str:
    """Accept a run folder (holding adapter/) or the adapter folder itself."""
    path = str(path)
    if os.path.isfile(os.path.join(path, ADAPTER, "adapter_config.json")):
        return os.path.join(path, ADAPTER)
    if os.path.isfile(os.path.join(path, "adapter_config.json")):
        return path
    raise RunError(f"{path}: no adapter_config.json here or in {path}/{ADAPTER}")


def finished(out: str | Path) -> dict[str, Any] | None:
    """The metrics of a completed eval in `out`, or None: lets pipelines skip finished steps."""
    path = Path(out) / EVAL_METRICS
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def train_finished(out: str | Path) -> bool:
    """Whether `out` holds a completed training run (its metrics are written last)."""
    return (Path(out) / TRAIN_METRICS).is_file()
