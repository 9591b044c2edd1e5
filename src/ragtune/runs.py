"""The run-folder layout every stage writes and reads: one place for the file names.

A training run folder holds `adapter/` (or `model/`), `train_config.yaml`,
`train_metrics.json`, `loss_curve.png` and `checkpoint-N/` folders; an eval folder holds
`metrics.json`, `predictions.jsonl`, the reports and `eval_config.yaml`. Later stages (eval,
export, RAG, serving) find an adapter or a finished eval through these functions, not by
spelling paths themselves.

    adapter_dir("runs/lora")     # "runs/lora/adapter"
    finished("runs/base")        # the metrics dict, or None when the eval has not finished

A folder belongs to one run. `claim` locks it for the run's lifetime (a lock file naming the
holder's PID, cleared when that process is gone) and compares the run's identity (its config,
the hashes of its input files, its model spec) with the one recorded in `<stage>_run.json`: a different
run stops with a clear message unless `overwrite`, and `resume` continues only the same run.

    with claim(out, identity("train", cfg, {"data": cfg.data}), "train", resume=True) as same:
        ...  # same: this continues the run recorded in out
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ragtune import atomic
from ragtune.errors import RagtuneError

ADAPTER = "adapter"  # LoRA adapter folder inside a training run
FULL_MODEL = "model"  # the weights of a full fine-tune inside a training run
TRAIN_CONFIG = "train_config.yaml"
TRAIN_METRICS = "train_metrics.json"
LOSS_CURVE = "loss_curve.png"
HELDOUT = "heldout.jsonl"  # the split training held out for eval loss and calibration
TRAIN_BUDGET = "budget.json"  # how a time budget shortened the run, kept for a resume
EVAL_CONFIG = "eval_config.yaml"
EVAL_METRICS = "metrics.json"
PREDICTIONS = "predictions.jsonl"
PARTIAL_PREDICTIONS = "predictions.partial.jsonl"  # appended while an eval runs; resumable
LOCK_FILE = ".ragtune.lock"  # held while a run writes into the folder

# What each stage writes into its folder: what --overwrite removes, and what shows that a
# folder holds a run's state.
OUTPUTS = {
    "train": [
        ADAPTER,
        FULL_MODEL,
        TRAIN_CONFIG,
        TRAIN_METRICS,
        LOSS_CURVE,
        TRAIN_BUDGET,
        HELDOUT,
        "checkpoint-*",
    ],
    "eval": [
        EVAL_CONFIG,
        EVAL_METRICS,
        PREDICTIONS,
        PARTIAL_PREDICTIONS,
        "report.md",
        "report.html",
    ],
}


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


def full_model_dir(path: str | Path) -> str | None:
    """The model a full fine-tune wrote, given its run folder or the model/ folder itself;
    None for any other folder: a base model's folder is not a training run's, and must not
    take a calibration file."""
    run = Path(path)
    if run.name == FULL_MODEL and (run.parent / TRAIN_CONFIG).is_file():
        run = run.parent
    model = run / FULL_MODEL
    if (run / TRAIN_CONFIG).is_file() and (model / "config.json").is_file():
        return str(model)
    return None


def tuned_dir(path: str | Path) -> str:
    """The folder a training run's weights are in: its LoRA adapter (as `adapter_dir`), or
    the model a full fine-tune wrote (`full_model_dir`). What the calibrated refusal
    threshold is saved with, so it travels with the weights."""
    try:
        return adapter_dir(path)
    except RunError:
        pass
    full = full_model_dir(path)
    if full is None:
        raise RunError(
            f"{path}: not a training run: no adapter_config.json here or in {path}/{ADAPTER}, "
            f"and no full fine-tune ({TRAIN_CONFIG} beside {FULL_MODEL}/config.json)"
        )
    return full


def saved_train_config(run: str | Path) -> dict[str, Any]:
    """The resolved train_config.yaml of a run folder (or of the run an adapter or full
    model folder sits in), as a dict; {} when there is none. What eval, calibration and
    advise read the prompt settings and max_length a model was trained with from."""
    path = Path(tuned_dir(str(run))).parent / TRAIN_CONFIG
    if not path.is_file():
        return {}
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def finished(out: str | Path) -> dict[str, Any] | None:
    """The metrics of a completed eval in `out`, or None: lets pipelines skip finished steps."""
    path = Path(out) / EVAL_METRICS
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def train_finished(out: str | Path) -> bool:
    """Whether `out` holds a completed training run (its metrics are written last)."""
    return (Path(out) / TRAIN_METRICS).is_file()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# Keys added after runs were made with this code: at their default they change nothing, so
# they stay out of the identity and those runs still resume and are reused.
ADDED_LATER = (
    "prompt.cite",
    "prompt.cite_instruction",
    "prompt.closed_book",
    "prompt.closed_book_system",
    "prompt.system_zh",
    "index",
    "judge",
    "judge_api_base",
    "judge_retries",
    "judge_max",
    "gen.refusal_score",
)


def identity(
    stage: str, cfg: Any, inputs: dict[str, str | None], ignore: tuple[str, ...] = ()
) -> dict[str, Any]:
    """What makes a run this run: its config as dotted keys, minus `ignore` (how it is run,
    not what it computes: threads, timeouts, logging, input paths), and the SHA-256 of each
    input file (an hf: spec or hub id by name). The model is its spec (a local folder is not
    hashed)."""
    config = {
        k: v
        for k, v in _flatten(dataclasses.asdict(cfg)).items()
        if not any(k == i or k.startswith(i + ".") for i in ignore)
    }
    try:
        defaults = _flatten(dataclasses.asdict(type(cfg)()))
    except (TypeError, ValueError, RagtuneError):  # a config that needs arguments
        defaults = {}
    for key in ADDED_LATER:
        if key in config and key in defaults and config[key] == defaults[key]:
            del config[key]
    text = json.dumps(config, sort_keys=True, default=str)
    files = {}
    for name, path in inputs.items():
        if path and Path(path).is_file():
            files[name] = file_sha256(path)
        elif path:
            files[name] = str(path)
    return {
        "stage": stage,
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "inputs": files,
        "config": config,
    }


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """How identity `a` (a folder's, as recorded) differs from `b` (what is asked now): each
    config key with both values, then each input whose content differs."""
    ca, cb = a.get("config", {}), b.get("config", {})
    diffs = [
        f"{k} ({_short(ca.get(k))} there, {_short(cb.get(k))} now)"
        for k in sorted(set(ca) | set(cb))
        if ca.get(k) != cb.get(k)
    ]
    ia, ib = a.get("inputs", {}), b.get("inputs", {})
    diffs += [f"the content of {k}" for k in sorted(set(ia) | set(ib)) if ia.get(k) != ib.get(k)]
    return diffs


def recorded_identity(out: str | Path, stage: str) -> dict[str, Any] | None:
    """What the `stage` run in `out` recorded it was made from (`identity`): None when it
    recorded nothing, {} when the record cannot be read (a torn write: matches nothing)."""
    path = Path(out) / run_file(stage)
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, ValueError):
        return {}


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def run_file(stage: str) -> str:
    """The identity file of `stage`'s run in its folder: one per stage, so an eval written
    into a training folder does not replace the training run's identity."""
    return f"{stage}_run.json"


def _state(out: Path, stage: str) -> list[str]:
    """The names of the stage's outputs present in `out` (a run's state)."""
    return sorted({p.name for pattern in OUTPUTS[stage] for p in out.glob(pattern)})


def clear(out: Path, stage: str) -> None:
    """Remove the stage's outputs from `out` (other files stay), and its identity."""
    for name in [*_state(out, stage), run_file(stage)]:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def _holder(lock: Path) -> dict[str, Any] | None:
    """The lock's holder, or None when the lock is stale (its process is gone)."""
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        holder = None
    if not isinstance(holder, dict):
        # Unreadable: torn by a kill long ago, or (young) not ours to judge.
        age = time.time() - lock.stat().st_mtime if lock.exists() else 1e9
        return {"pid": "?", "host": "?", "stage": "?", "since": time.time()} if age < 10 else None
    pid, host = holder.get("pid"), holder.get("host")
    # Our own PID can only be a leftover of an earlier container that had it too.
    if (
        host == socket.gethostname()
        and isinstance(pid, int)
        and (pid == os.getpid() or not atomic.pid_alive(pid))
    ):
        return None
    return holder


def _lock(out: Path, stage: str) -> Path:
    """Take `out`'s lock: its content is written first and linked into place, so no reader
    ever sees an empty lock, and two takers cannot both succeed."""
    lock = out / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname(), "stage": stage, "since": time.time()}
    tmp = out / f".{LOCK_FILE}.{os.getpid()}.new.tmp"
    tmp.write_text(json.dumps(me), encoding="utf-8")
    try:
        for _ in range(3):
            try:
                os.link(tmp, lock)
                return lock
            except FileExistsError:
                holder = _holder(lock)
                if holder is None:
                    lock.unlink(missing_ok=True)  # its holder is gone (killed): stale
                    continue
                since = time.strftime("%H:%M:%S", time.localtime(holder.get("since", 0)))
                raise RagtuneError(
                    f"{out}: in use by ragtune {holder.get('stage')} (PID {holder.get('pid')} on "
                    f"{holder.get('host')}, since {since}); wait for it to finish, choose another "
                    f"out, or, if no run is using it, delete {lock}"
                ) from None
        raise RagtuneError(f"{out}: could not take the lock {lock}")
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def claim(
    out: str | Path, ident: dict[str, Any], stage: str, *, resume: bool, overwrite: bool = False
) -> Iterator[bool]:
    """Hold `out` for one run; yields whether this continues the run recorded there.

    - Another live ragtune process holds it: error. A lock left by a killed one is cleared.
    - It records the same run (same identity): continue it when `resume` (eval always
      passes True: it reuses its saved answers); else an error that offers --resume.
    - It holds another run's state: error naming what differs. `resume` never continues a
      different run. With `overwrite` that state is removed first and the run starts anew.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = _lock(out, stage)
    except PermissionError as e:
        raise RagtuneError(f"{out}: cannot write here ({e.strerror}); choose another out") from None
    try:
        atomic.remove_stale(out)
        recorded = recorded_identity(out, stage)
        state = _state(out, stage)
        same = (
            recorded is not None
            and recorded.get("config_sha256") == ident["config_sha256"]
            and recorded.get("inputs") == ident["inputs"]
        )
        go_on = same and bool(state) and resume
        if state and not go_on:
            if overwrite:
                clear(out, stage)
            elif same:
                raise RagtuneError(
                    f"{out}: already holds this {stage} run ({', '.join(state[:4])}); pass "
                    "--resume to continue it, --overwrite to start it again, or choose another out"
                )
            else:
                why = (
                    "differs in " + "; ".join(differences(recorded, ident)[:4])
                    if recorded
                    else f"left {', '.join(state[:4])} and no {run_file(stage)} to identify it"
                )
                flag = (
                    "--resume continues only the same run. " if resume and stage == "train" else ""
                )
                raise RagtuneError(
                    f"{out}: holds another {stage} run, which {why}. {flag}Pass --overwrite "
                    "to replace it, or choose another out"
                )
        atomic.write_json(out / run_file(stage), ident)
        yield go_on
    finally:
        lock.unlink(missing_ok=True)
