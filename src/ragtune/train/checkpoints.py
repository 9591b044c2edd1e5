"""Which checkpoint a resumed run continues from: the newest *complete* one.

The Trainer writes `checkpoint-N/` file by file: weights, optimizer, scheduler, RNG state,
and `trainer_state.json` last. A kill in between leaves a folder that transformers would try
to resume from and fail on ("Can't find a valid checkpoint", a missing trainer_state.json),
blocking the run for good. Since trainer_state.json is written last, a checkpoint counts as
complete when that file parses and names its own step (and, where the weights are a
safetensors file, its header reads). Anything newer than the newest complete one is removed.
DeepSpeed and FSDP checkpoints (their own optimizer layouts) are judged the same way.

    path, dropped = latest_complete(Path("runs/lora"))
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
WEIGHTS = ("adapter_model.safetensors", "model.safetensors")


def _step(path: Path) -> int:
    m = _CHECKPOINT.match(path.name)
    return int(m.group(1)) if m else -1


def is_complete(path: Path) -> bool:
    """Whether `path` holds everything a resume reads (see the module docstring)."""
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if not isinstance(state, dict) or state.get("global_step") != _step(path):
        return False
    from safetensors import safe_open

    for w in WEIGHTS:
        if (path / w).is_file():
            try:
                with safe_open(str(path / w), framework="pt") as f:
                    f.keys()
            except Exception:  # a torn file fails in several ways, all meaning "not complete"
                return False
    return True


def latest_complete(out: Path) -> tuple[Path | None, list[Path]]:
    """(the newest complete checkpoint in `out` or None, the incomplete ones newer than it)."""
    found = sorted((p for p in out.glob("checkpoint-*") if _step(p) >= 0), key=_step, reverse=True)
    newer: list[Path] = []
    for p in found:
        if is_complete(p):
            return p, newer
        newer.append(p)
    return None, newer


def resume_point(out: Path) -> Path | None:
    """The checkpoint to resume from; incomplete newer ones are deleted (the Trainer would
    otherwise sort them first), and the choice is printed."""
    path, torn = latest_complete(out)
    for p in torn:
        shutil.rmtree(p, ignore_errors=True)
    dropped = f" ({', '.join(p.name for p in torn)} incomplete, removed)" if torn else ""
    if path is None:
        print(f"resume: no complete checkpoint in {out}{dropped}; starting from scratch")
    else:
        print(f"resume: from {path.name}{dropped}")
    return path
