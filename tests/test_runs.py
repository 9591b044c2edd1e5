"""Run folders: the lock (live, stale, torn, our own PID from an earlier container) and the
identity (dotted differences, ignored keys, one identity file per stage)."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ragtune import runs
from ragtune.errors import RagtuneError


@dataclass
class Gen:
    model: str = "m"
    timeout_s: float = 1.0


@dataclass
class Cfg:
    lr: float = 0.1
    out: str = "x"
    gen: Gen = field(default_factory=Gen)


def _ident(**kw: object) -> dict:
    return runs.identity("eval", Cfg(**kw), {}, ignore=("out", "gen.timeout_s"))  # type: ignore[arg-type]


def test_identity_ignores_how_and_names_what_differs(tmp_path: Path) -> None:
    assert _ident() == _ident(out="elsewhere", gen=Gen(timeout_s=9.0))
    with runs.claim(tmp_path, _ident(), "eval", resume=True):
        (tmp_path / "metrics.json").write_text("{}")  # the eval's state
    other = _ident(gen=Gen(model="other"))
    with (
        pytest.raises(RagtuneError, match=r"differs in gen\.model \('m' there, 'other' now\)"),
        runs.claim(tmp_path, other, "eval", resume=True),
    ):
        pass


def test_each_stage_keeps_its_own_identity(tmp_path: Path) -> None:
    with runs.claim(tmp_path, _ident(), "eval", resume=True):
        (tmp_path / "metrics.json").write_text("{}")
    train = runs.identity("train", Cfg(lr=0.5), {})
    with runs.claim(tmp_path, train, "train", resume=True):
        (tmp_path / "train_metrics.json").write_text("{}")
    with runs.claim(tmp_path, _ident(), "eval", resume=True) as same:
        assert same  # the training run beside it did not replace the eval's identity
    assert json.loads((tmp_path / "eval_run.json").read_text())["stage"] == "eval"
    assert json.loads((tmp_path / "train_run.json").read_text())["stage"] == "train"


def _lock(folder: Path, content: str) -> Path:
    lock = folder / runs.LOCK_FILE
    lock.write_text(content)
    return lock


@pytest.mark.parametrize(
    ("content", "held"),
    [
        ("", True),  # being written this instant by another taker: held
        (json.dumps({"pid": os.getpid(), "host": socket.gethostname()}), False),  # our PID: a
        # leftover of an earlier container that had it
        (json.dumps({"pid": 2**22 + 17, "host": socket.gethostname()}), False),  # gone
        (json.dumps({"pid": 1, "host": "another-machine", "since": 0}), True),  # can't check
    ],
)
def test_lock_holders(tmp_path: Path, content: str, held: bool) -> None:
    _lock(tmp_path, content)
    if held:
        with (
            pytest.raises(RagtuneError, match=r"in use by .*delete .*\.ragtune\.lock"),
            runs.claim(tmp_path, _ident(), "eval", resume=True),
        ):
            pass
    else:
        with runs.claim(tmp_path, _ident(), "eval", resume=True):
            assert json.loads((tmp_path / runs.LOCK_FILE).read_text())["pid"] == os.getpid()
    assert held == (tmp_path / runs.LOCK_FILE).exists()


def test_an_old_torn_lock_is_stale(tmp_path: Path) -> None:
    lock = _lock(tmp_path, "")
    old = time.time() - 60
    os.utime(lock, (old, old))
    with runs.claim(tmp_path, _ident(), "eval", resume=True):
        pass
    assert not lock.exists()


def test_keys_added_later_at_their_default_leave_the_identity_alone() -> None:
    from ragtune.eval.stage import EvalConfig
    from ragtune.prompt.grounded import PromptConfig
    from ragtune.runs import identity

    plain = identity("eval", EvalConfig(data="x"), {})
    assert not any(
        k.startswith(("prompt.cite", "prompt.closed_book", "prompt.system_zh", "judge"))
        for k in plain["config"]
    )
    zh = identity(
        "eval", EvalConfig(data="x", prompt=PromptConfig(system_zh="只根据上下文回答。")), {}
    )
    assert zh["config_sha256"] != plain["config_sha256"]
    cited = identity("eval", EvalConfig(data="x", prompt=PromptConfig(cite=True)), {})
    assert (
        cited["config"]["prompt.cite"] is True and cited["config_sha256"] != plain["config_sha256"]
    )


def test_tuned_dir_finds_an_adapter_or_a_full_finetune(tmp_path: Path) -> None:
    from ragtune.runs import RunError, tuned_dir

    lora, full, base = tmp_path / "lora", tmp_path / "full", tmp_path / "base"
    (lora / "adapter").mkdir(parents=True)
    (lora / "adapter" / "adapter_config.json").write_text("{}")
    (full / "model").mkdir(parents=True)
    (full / "model" / "config.json").write_text("{}")
    base.mkdir()
    (base / "config.json").write_text("{}")  # a base model's folder: not a training run
    assert tuned_dir(lora) == str(lora / "adapter")
    assert tuned_dir(lora / "adapter") == str(lora / "adapter")
    with pytest.raises(RunError, match="not a training run"):
        tuned_dir(full)  # no train_config.yaml yet: model/ alone is not a run's
    (full / "train_config.yaml").write_text("method: full\n")
    assert tuned_dir(full) == str(full / "model")
    assert tuned_dir(full / "model") == str(full / "model")
    for other in (tmp_path, base):
        with pytest.raises(RunError, match=r"not a training run: no adapter_config.json"):
            tuned_dir(other)


def test_recorded_identity_tells_missing_from_torn(tmp_path: Path) -> None:
    assert runs.recorded_identity(tmp_path, "eval") is None  # nothing recorded
    (tmp_path / runs.run_file("eval")).write_text('{"config": {"a"', encoding="utf-8")
    assert runs.recorded_identity(tmp_path, "eval") == {}  # torn: matches nothing
    (tmp_path / runs.run_file("eval")).write_text('{"config": {"a": 1}}', encoding="utf-8")
    assert runs.recorded_identity(tmp_path, "eval") == {"config": {"a": 1}}
