"""The CLI end to end on a tiny model: check -> prepare -> train -> eval (base, tuned) -> compare."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ragtune.cli import main
from ragtune.errors import RagtuneError


def _squad(path: Path) -> Path:
    data = {"version": "v2.0", "data": []}
    for a in range(6):
        city = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Quito"][a]
        ctx = f"The tower of article {a} stands in {city}. It was built in 18{a}9."
        qas = [
            {
                "id": f"{a}-1",
                "question": f"Where is the tower of article {a}?",
                "is_impossible": False,
                "answers": [{"text": city, "answer_start": ctx.index(city)}],
            },
            {
                "id": f"{a}-2",
                "question": f"Who designed the tower of article {a}?",
                "is_impossible": True,
                "answers": [],
                "plausible_answers": [{"text": city, "answer_start": 0}],
            },
        ]
        data["data"].append({"title": f"Article {a}", "paragraphs": [{"context": ctx, "qas": qas}]})
    path.write_text(json.dumps(data))
    return path


def test_cli_end_to_end(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _squad(tmp_path / "squad.json")
    before = src.read_bytes()
    model = str(tiny_model_dir)

    assert (
        main(
            [
                "data",
                "check",
                "--data",
                str(src),
                "--model",
                model,
                "out=" + str(tmp_path / "check.md"),
            ]
        )
        == 0
    )
    assert "examples" in capsys.readouterr().out.lower()
    assert (tmp_path / "check.md").is_file()

    assert (
        main(
            [
                "data",
                "prepare",
                "--data",
                str(src),
                "--out",
                str(tmp_path / "data"),
                "eval_fraction=0.34",
            ]
        )
        == 0
    )
    train_file, eval_file = tmp_path / "data" / "train.jsonl", tmp_path / "data" / "eval.jsonl"
    assert train_file.is_file() and eval_file.is_file()

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(train_file),
                "--eval-data",
                str(eval_file),
                "--model",
                model,
                "--out",
                str(run),
                "max_steps=8",
                "lr=5e-2",  # as people write it: YAML alone would read "5e-2" as a string
                "lora.r=4",
                "runtime.threads=1",
                "runtime.dtype=fp32",
            ]
        )
        == 0
    )
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert "lora:\n  r: 4" in (run / "train_config.yaml").read_text()

    answers: dict[str, list[str]] = {}
    for label, extra in (("base", []), ("tuned", ["--adapter", str(run)])):
        assert (
            main(
                [
                    "eval",
                    "--data",
                    str(eval_file),
                    "--model",
                    model,
                    "--out",
                    str(tmp_path / label),
                    "--label",
                    label,
                    "gen.max_new_tokens=4",
                    "runtime.threads=1",
                    "semantic=false",
                    *extra,
                ]
            )
            == 0
        )
        preds = [
            json.loads(line)
            for line in (tmp_path / label / "predictions.jsonl").read_text().splitlines()
        ]
        assert len(preds) == len(eval_file.read_text().splitlines())
        assert {"id", "question", "prediction", "refused", "latency_s", "new_tokens"} <= set(
            preds[0]
        )
        metrics = json.loads((tmp_path / label / "metrics.json").read_text())
        assert metrics["label"] == label and metrics["n"] == len(preds)
        assert (tmp_path / label / "report.html").is_file()
        assert not (tmp_path / label / "predictions.partial.jsonl").exists()
        answers[label] = [p["prediction"] for p in preds]
        assert metrics["adapter"] == (str(run) if label == "tuned" else None)
    # The adapter was loaded: 8 steps at a high learning rate change the tiny model's answers.
    assert answers["tuned"] != answers["base"]

    capsys.readouterr()
    assert (
        main(
            [
                "compare",
                str(tmp_path / "base"),
                str(tmp_path / "tuned"),
                "out=" + str(tmp_path / "cmp"),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "base" in table and "tuned" in table
    assert (tmp_path / "cmp" / "compare.html").is_file()
    assert src.read_bytes() == before  # the input file is never modified


def test_cli_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", "x.jsonl", "lora.rank=3"]) == 2
    assert "unknown config key lora.rank" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"question": "q", "context": "c", "answer": "a"}\n{"context": "c", "answer": "a"}\n'
    )
    assert main(["data", "check", "--data", str(bad)]) == 2
    assert f"{bad}:2" in capsys.readouterr().err


def test_help_lists_documented_keys() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ragtune.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "lora.r = None" in out and "LoRA rank" in out and "--resume" in out
    top = subprocess.run(
        [sys.executable, "-m", "ragtune.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for cmd in ("data", "train", "eval", "compare", "demo"):
        assert cmd in top


def _squad_file(tmp_path: Path) -> Path:
    src = tmp_path / "squad.json"
    src.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "title": "T",
                        "paragraphs": [
                            {
                                "context": "The Eiffel Tower is in Paris.",
                                "qas": [
                                    {
                                        "id": "q1",
                                        "question": "Where is the tower?",
                                        "answers": [{"text": "Paris", "answer_start": 22}],
                                    }
                                ],
                            }
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    return src


def test_data_file_as_positional_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _squad_file(tmp_path)
    assert main(["data", "check", str(src)]) == 0
    assert "format: squad" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (
            ["train", "a.jsonl", "b.jsonl"],
            "pass a file or folder with its flag (--data, --eval-data",
        ),
        (["train", "a.jsonl", "lr", "3e-4"], "did you mean lr=3e-4?"),
        (["train", "a.jsonl", "epoch=3"], "unknown config key epoch"),
        (["train", "a.jsonl", "--", "epochz"], "did you mean epochs=...?"),
        (["demo", "runs/x"], "pass a file or folder with its flag (--model, --out)"),
    ],
)
def test_stray_arguments_say_what_was_meant(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ragtune {argv[0]}: error: ") and hint in err
    assert "Traceback" not in err


def test_debug_keeps_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(RagtuneError, match="file not found"):
        main(["data", "check", str(tmp_path / "missing.json"), "--debug"])


def test_an_unwritable_out_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder that cannot be created (here: a file is in the way; root ignores read-only
    modes) is the machine's refusal, said in one line with the path."""
    src = _squad_file(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for argv in (
        ["data", "check", str(src), "--out", str(blocker / "check.md")],
        ["data", "prepare", str(src), "--out", str(blocker / "split")],
        ["train", str(src), "--out", str(blocker / "run")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and str(blocker) in err, err


def test_a_dashed_key_gets_the_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "a.jsonl", "--lr", "3e-4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ragtune train: error: ") and "did you mean lr=" in err


def test_non_ascii_paths_pass_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _squad_file(tmp_path)
    named = src.rename(tmp_path / "données 😀.json")
    assert main(["data", "check", str(named)]) == 0
    assert "format: squad" in capsys.readouterr().out


def test_repeatable_flags_and_two_positionals_fill_their_keys() -> None:
    from ragtune.cli import build_parser, overrides_for
    from ragtune.config import load_config

    args, extra = build_parser().parse_known_args(
        ["serve", "--adapter", "a=runs/a", "--adapter", "b=runs/b", "--index", "docs=idx"]
    )
    cfg = load_config(args.stage.module.Config, None, overrides_for(args.stage, args))
    assert cfg.adapters == ["a=runs/a", "b=runs/b"] and cfg.indexes == ["docs=idx"]
    args, extra = build_parser().parse_known_args(
        ["ask", "my-index", "What is x=1 for?", "retrieval.k=2"]
    )
    cfg = load_config(args.stage.module.Config, None, overrides_for(args.stage, args))
    assert (cfg.index, cfg.question, cfg.retrieval.k) == ("my-index", "What is x=1 for?", 2)
    args, extra = build_parser().parse_known_args(["ask", "idx", "prompt.system=Be brief.", "q?"])
    cfg = load_config(args.stage.module.Config, None, overrides_for(args.stage, args))
    assert (cfg.question, cfg.prompt.system) == ("q?", "Be brief.")
