"""More English questions to choose a run's refusal threshold on (real_data.py
--calibrate-unused, unused_questions.py): the run's held-out split holds whole articles, and
the shared SQuAD sample leaves it one or two, so a threshold chosen there follows a handful of
unanswerable questions. The SQuAD questions of the training articles that training did not
draw are labelled, unseen by the adapter, and behave like the eval set's (RESULTS.md: the
refusal start's AUC is 71.5% on them and 70.6% on the eval set, 85.6% on the trained ones).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from ragtune import atomic, runs
from ragtune.data.importers import load_examples
from ragtune.eval import calibrate
from ragtune.eval.calibrate import CalibrateSection
from ragtune.example import Example, write_jsonl
from ragtune.generation import abstain
from ragtune.runtime import RuntimeSection


def unused_questions(train_articles: list[Example], train_file: Path) -> list[Example]:
    """The questions of `train_articles` (the SQuAD examples of the articles not held out)
    that `train_file` does not hold: labelled questions the adapter never saw."""
    # By question text: counterfactual rewrites keep the question but change id and passage.
    used = {e.question for e in load_examples(train_file)}
    return [e for e in train_articles if e.question not in used]


def draw(unused: list[Example], n: int, seed: int) -> list[Example]:
    """`n` of them (all when fewer), drawn at `seed`: the one draw both scripts make."""
    return random.Random(seed).sample(unused, min(n, len(unused)))


def calibration_set(
    train_dir: Path, train_articles: list[Example], train_file: Path, n: int, seed: int
) -> list[Example]:
    """The run's held-out split, then `n` unused questions of its training articles."""
    drawn = draw(unused_questions(train_articles, train_file), n, seed)
    return load_examples(train_dir / runs.HELDOUT) + drawn


def target_name(record_target: str) -> str:
    """A record's target as folder and file names carry it: maxf1, or fr10 for at most 10%
    false refusals."""
    cap = calibrate.target_cap(record_target)
    return "maxf1" if cap is None else f"fr{round(100 * cap)}"


def calibrate_on_more(
    train_dir: Path,
    examples: list[Example],
    path: Path,
    max_false_refusal: float | None,
    want_probe: bool,
    keep: str,
    rt_section: RuntimeSection,
) -> None:
    """Choose the run's threshold again on `examples` (written to `path`), keeping the probe
    the run has (one is fitted or removed only where `want_probe` says otherwise: a run
    trained without calibration has none), unless its calibration record already comes from
    these questions at this target and score. The record replaced is copied first to
    `<keep>-<its set>-<its score>-<its target>.json`: training's choice on the held-out split
    stays beside the new one."""
    record: dict[str, Any] = abstain.read_calibration(train_dir) or {}
    has_probe = record.get("score") == "probe"
    goal = calibrate.target_label(max_false_refusal)
    # Compared before `path` is written: the record may name that very file.
    was = Path(str(record.get("data") or ""))
    before = was.read_bytes() if record.get("data") and was.is_file() else None
    write_jsonl(path, examples)
    if (
        before == path.read_bytes()  # by content: a copy of the same file made by hand counts
        and record.get("target") == goal
        and record.get("held_out") == len(examples)
        and has_probe == want_probe
        # answers made under another refusal block would choose another threshold
        and (record.get("answered") or {}).get("refusal_block") == abstain.BLOCK
    ):
        return
    if record:
        # Training's own record names no data: it was chosen on the run's held-out split.
        held_out = not record.get("data") or was.name == runs.HELDOUT
        source = "heldout" if held_out else f"cal{record.get('held_out')}"
        score = record.get("score", "start")
        copy = Path(f"{keep}-{source}-{score}-{target_name(str(record.get('target')))}.json")
        if not copy.exists():
            atomic.write_json(copy, record)
    section = CalibrateSection(
        max_examples=len(examples),
        max_false_refusal=max_false_refusal,
        probe=None if has_probe == want_probe else want_probe,
    )
    calibrate.run(
        calibrate.CalibrateConfig(
            run=str(train_dir), data=str(path), calibrate=section, runtime=rt_section
        )
    )
