"""Kills at any instant: a real training run (tiny model) and `data prepare` are SIGKILLed
at chosen points by a driver process, and what they leave is checked.

- train: killed during a step, while writing a checkpoint, and while saving the final
  adapter; `resume=true` then always finishes the same run, to the same adapter weights as
  a run that was never killed, and leaves no temporary files.
- prepare: killed after writing half of the new split, and after publishing it but before
  cleaning up; `out` holds the old set or the new set, never a mix, and the next run
  removes what the killed one left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from ragtune.config import save_config
from ragtune.data.prepare import PrepareConfig
from ragtune.example import Example, write_jsonl
from ragtune.train import stage as train
from ragtune.train.checkpoints import is_complete

DRIVER = r"""
import os, shutil, signal, sys
from pathlib import Path

stage, point, arg, cfg_path = sys.argv[1:5]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if point == "step":  # in the middle of training, between optimizer steps
    from ragtune.train.callbacks import ProgressBar

    plain = ProgressBar.on_step_end

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == int(arg):
            die()
        return plain(self, args, state, control, **kw)

    ProgressBar.on_step_end = on_step_end
elif point == "checkpoint":  # half-way through writing checkpoint-N's optimizer state
    import torch

    plain_save = torch.save

    def save(obj, f, *a, **kw):
        if str(f).endswith(f"checkpoint-{arg}/optimizer.pt"):
            Path(f).write_bytes(b"PK\x03\x04 torn")
            die()
        return plain_save(obj, f, *a, **kw)

    torch.save = save
elif point == "final":  # while the finished run saves its adapter
    from peft import PeftModel

    plain_pretrained = PeftModel.save_pretrained

    def save_pretrained(self, path, *a, **kw):
        if ".adapter." in str(path):
            Path(path, "adapter_model.safetensors").write_bytes(b"torn")
            die()
        return plain_pretrained(self, path, *a, **kw)

    PeftModel.save_pretrained = save_pretrained
elif point == "half-set":  # prepare: the new train.jsonl written, eval.jsonl not yet
    from ragtune.data import prepare

    plain_write = prepare.write_jsonl

    def write_jsonl(path, examples):
        n = plain_write(path, examples)
        if Path(path).name == "train.jsonl":
            die()
        return n

    prepare.write_jsonl = write_jsonl
elif point == "published":  # prepare: the new set swapped in, the old not yet deleted
    from ragtune import atomic

    atomic.shutil.rmtree = lambda *a, **kw: die()

from ragtune.config import load_config

if stage == "train":
    from ragtune.train import stage as train_stage
    from ragtune.train.config import TrainConfig

    train_stage.run(load_config(TrainConfig, cfg_path))
else:
    from ragtune.data import prepare
    from ragtune.data.prepare import PrepareConfig

    prepare.run(load_config(PrepareConfig, cfg_path))
sys.exit(3)  # the kill point was never reached: the test must not pass by accident
"""


def _kill(tmp_path: Path, stage: str, point: str, arg: object, cfg: object) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    cfg_path = tmp_path / f"{point}.yaml"
    save_config(cfg, cfg_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(driver), stage, point, str(arg), str(cfg_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def _leftovers(folder: Path) -> list[str]:
    return sorted(
        p.name
        for p in folder.rglob("*")
        if p.name.endswith(".tmp") or p.name.startswith(".ragtune")
    )


@pytest.fixture
def reference_adapter(tiny_train_cfg: Any, tmp_path: Path) -> dict:
    result = train.run(tiny_train_cfg(tmp_path / "reference"))
    return load_file(str(result.adapter / "adapter_model.safetensors"))


@pytest.mark.parametrize(
    ("point", "arg", "resumed_from"),
    [("step", 3, "checkpoint-2"), ("checkpoint", 4, "checkpoint-2"), ("final", 0, "checkpoint-6")],
)
def test_killed_training_resumes_to_the_same_run(
    tmp_path: Path,
    tiny_train_cfg: Any,
    reference_adapter: dict,
    point: str,
    arg: int,
    resumed_from: str,
) -> None:
    cfg = tiny_train_cfg(tmp_path)
    _kill(tmp_path, "train", point, arg, cfg)
    run = tmp_path / "run"
    assert not (run / "adapter" / "adapter_model.safetensors").exists()  # never a half adapter
    result = train.run(tiny_train_cfg(tmp_path, resume=True))
    assert result.metrics["resumed_from"].endswith(resumed_from)
    assert result.metrics["steps"] == 6
    assert all(is_complete(p) for p in run.glob("checkpoint-*"))
    assert _leftovers(run) == []
    weights = load_file(str(result.adapter / "adapter_model.safetensors"))
    assert set(weights) == set(reference_adapter)
    for k, v in weights.items():  # the same run: the never-killed run's adapter, bit for bit
        assert (v - reference_adapter[k]).abs().max() < 1e-5, k


def _prepare(tmp_path: Path, seed: int) -> PrepareConfig:
    data = tmp_path / "squad.jsonl"
    if not data.exists():
        rows = [
            Example(
                f"q{i}",
                f"Where is tower {i}?",
                [f"Tower {i} is in city {i}."],
                [f"city {i}"],
                group=f"g{i}",
            )
            for i in range(40)
        ]
        write_jsonl(data, rows)
    return PrepareConfig(data=str(data), out=str(tmp_path / "split"), eval_fraction=0.3, seed=seed)


def _files(folder: Path) -> dict[str, object]:
    """The split's content: both JSONL files byte for byte, and the report's counts (its
    paths name the folder, so they are left out)."""
    import json

    report = json.loads((folder / "prepare_report.json").read_text())
    return {
        "names": sorted(p.name for p in folder.iterdir()),
        "train.jsonl": (folder / "train.jsonl").read_bytes(),
        "eval.jsonl": (folder / "eval.jsonl").read_bytes(),
        "report": (report["train"], report["eval"], report["config"]["seed"]),
    }


@pytest.mark.parametrize(("point", "expect"), [("half-set", "old"), ("published", "new")])
def test_killed_prepare_leaves_the_old_set_or_the_new_never_a_mix(
    tmp_path: Path, point: str, expect: str
) -> None:
    from ragtune.data import prepare

    prepare.run(_prepare(tmp_path, seed=1))
    old = _files(tmp_path / "split")
    new_cfg = _prepare(tmp_path, seed=2)
    prepare.run(PrepareConfig(**{**new_cfg.__dict__, "out": str(tmp_path / "fresh")}))
    new = _files(tmp_path / "fresh")
    assert old["train.jsonl"] != new["train.jsonl"]
    _kill(tmp_path, "prepare", point, 0, new_cfg)
    found = _files(tmp_path / "split")
    assert found == (old if expect == "old" else new)
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # what the kill left
    prepare.run(new_cfg)  # the next run cleans up and publishes
    assert _files(tmp_path / "split") == new
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
