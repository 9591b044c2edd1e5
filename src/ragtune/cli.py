"""The `ragtune` command: one table of subcommands, each a stage's `run(config)`.

Every stage takes `--config file.yaml` plus dotted `key=value` overrides (`lora.r=8`), and a
few shortcut flags (`--model`, `--data`, ...) that set the same keys. `ragtune STAGE --help`
lists every config key with its default and its documentation, read from the config
dataclass, so the help can never drift from the code.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ragtune import __version__
from ragtune.config import ConfigError, describe, load_config


@dataclass
class Stage:
    name: str
    summary: str
    config: Callable[[], type]
    run: Callable[[Any], Any]
    shortcuts: dict[str, str]  # --flag -> config key
    show: Callable[[Any], None]  # prints the result for a person


def _stages() -> list[Stage]:
    # Imports are deferred so `ragtune --help` stays fast (torch loads only when a stage runs).
    def check_cfg() -> type:
        from ragtune.data.check import CheckConfig

        return CheckConfig

    def check_run(cfg: Any) -> Any:
        from ragtune.data import check

        return check.run(cfg)

    def check_show(report: Any) -> None:
        from ragtune.data.check import format_report

        print(format_report(report))

    def prepare_cfg() -> type:
        from ragtune.data.prepare import PrepareConfig

        return PrepareConfig

    def prepare_run(cfg: Any) -> Any:
        from ragtune.data import prepare

        return prepare.run(cfg)

    def train_cfg() -> type:
        from ragtune.train import TrainConfig

        return TrainConfig

    def train_run(cfg: Any) -> Any:
        from ragtune import train

        return train.run(cfg)

    def eval_cfg() -> type:
        from ragtune.evaluate import EvalConfig

        return EvalConfig

    def eval_run(cfg: Any) -> Any:
        from ragtune import evaluate

        return evaluate.run(cfg)

    def compare_cfg() -> type:
        from ragtune.compare import CompareConfig

        return CompareConfig

    def compare_run(cfg: Any) -> Any:
        from ragtune import compare

        return compare.run(cfg)

    def compare_show(result: Any) -> None:
        from ragtune.compare import format_table

        print(format_table(result))

    def demo_cfg() -> type:
        from ragtune.demo import DemoConfig

        return DemoConfig

    def demo_run(cfg: Any) -> Any:
        from ragtune import demo

        return demo.run(cfg)

    def export_cfg() -> type:
        from ragtune.export.stage import ExportConfig

        return ExportConfig

    def export_run(cfg: Any) -> Any:
        from ragtune.export import stage

        return stage.run(cfg)

    def export_show(result: Any) -> None:
        for path, size in result.files.items():
            print(f"{size / 1e6:>10.1f} MB  {result.out / path}")
        for r in result.verification:
            agree = r.get("agreement")
            print(
                f"verified {r['file']} ({r['engine']}): logit cosine {r['logit_cosine']:.4f}"
                + (f", answers agree {agree:.0f}% of {r['n']}" if agree is not None else "")
                + (f", F1 {r['f1']:.1f} vs {r['f1_transformers']:.1f}" if "f1" in r else "")
            )
        if result.pushed:
            print(f"pushed to {result.pushed}")

    def show_json(result: Any) -> None:
        if result is None:
            return
        if hasattr(result, "metrics"):
            result = result.metrics
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str))

    def show_eval(result: Any) -> None:
        from ragtune.metrics import HEADLINE

        keys = [
            "n",
            *HEADLINE,
            "tokens_per_s",
        ]
        for k in keys:
            v = result.get(k)
            print(f"{k:>24}: {v:.3f}" if isinstance(v, float) else f"{k:>24}: {v}")

    return [
        Stage(
            "data check",
            "Quality report for a data file: counts, empties, duplicates, lengths, answers not in context, overlap.",
            check_cfg,
            check_run,
            {"--data": "data", "--format": "format", "--model": "model", "--out": "out"},
            check_show,
        ),
        Stage(
            "data prepare",
            "Clean a data file and write train.jsonl / eval.jsonl split by article, so no context leaks.",
            prepare_cfg,
            prepare_run,
            {"--data": "data", "--format": "format", "--out": "out"},
            show_json,
        ),
        Stage(
            "train",
            "LoRA / QLoRA / full fine-tuning with loss on the answer only; eval loss, early stopping, resume.",
            train_cfg,
            train_run,
            {
                "--data": "data",
                "--eval-data": "eval_data",
                "--model": "model",
                "--out": "out",
                "--preset": "preset",
                "--format": "format",
            },
            show_json,
        ),
        Stage(
            "eval",
            "Answer a held-out set with a model (+adapter, or an OpenAI-compatible API) and score it; writes a report.",
            eval_cfg,
            eval_run,
            {
                "--data": "data",
                "--model": "gen.model",
                "--adapter": "gen.adapter",
                "--out": "out",
                "--label": "label",
                "--format": "format",
            },
            show_eval,
        ),
        Stage(
            "compare",
            "Put eval runs side by side (base vs tuned vs API model): table, deltas, HTML chart.",
            compare_cfg,
            compare_run,
            {"--out": "out"},
            compare_show,
        ),
        Stage(
            "export",
            "Write a tuned model for other runtimes: merged safetensors, GGUF (quantized, LoRA), Ollama Modelfile; verified.",
            export_cfg,
            export_run,
            {
                "--model": "model",
                "--adapter": "adapter",
                "--to": "to",
                "--out": "out",
                "--data": "data",
                "--push-to-hub": "push_to_hub",
            },
            export_show,
        ),
        Stage(
            "demo",
            "The main job, offline: build a demo set, evaluate the base model, fine-tune, evaluate again, report.",
            demo_cfg,
            demo_run,
            {"--model": "model", "--out": "out"},
            lambda _: None,  # demo.run prints the before/after table itself
        ),
    ]


def _config_help(cls: type) -> str:
    lines = ["config keys (set in --config YAML or as key=value):"]
    for key, default, doc in describe(cls):
        lines.append(f"  {key} = {default}")
        for chunk in textwrap.wrap(doc, 88):
            lines.append(f"      {chunk}")
    return "\n".join(lines)


class _LazyHelp(argparse.ArgumentParser):
    """Builds the config-key listing only when --help is asked for (it imports the stage)."""

    def __init__(self, *a: Any, stage: Stage | None = None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._stage = stage

    def format_help(self) -> str:
        text = super().format_help()
        if self._stage is not None:
            text += "\n" + _config_help(self._stage.config())
        return text


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Stage]]:
    parser = argparse.ArgumentParser(
        prog="ragtune",
        description=(
            "Fine-tune a small open LLM into a grounded RAG answer generator: it answers from the "
            "retrieved context, says so when the context lacks the answer, and stays short.\n\n"
            "Typical flow: ragtune data check -> ragtune data prepare -> ragtune eval (base) -> "
            "ragtune train -> ragtune eval (tuned) -> ragtune compare -> ragtune export.  "
            "`ragtune demo` runs it all offline on a shipped demo set."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ragtune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_LazyHelp)
    stages: dict[str, Stage] = {}
    data_parser = sub.add_parser(
        "data",
        help="Inspect and prepare data (check, prepare).",
        description="Inspect and prepare QA data. Formats: squad (v1/v2, CMRC 2018), "
        "cqa-json, cqa-jsonl, cqa-csv, alpaca, sharegpt, openai (messages JSONL), "
        "canonical (ragtune JSONL), hf:NAME (Hugging Face dataset, online).",
    )
    data_sub = data_parser.add_subparsers(
        dest="data_command", metavar="ACTION", parser_class=_LazyHelp
    )
    for stage in _stages():
        stages[stage.name] = stage
        target = data_sub if stage.name.startswith("data ") else sub
        name = stage.name.split()[-1]
        p = target.add_parser(
            name,
            help=stage.summary,
            description=stage.summary,
            stage=stage,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(stage=stage.name)
        p.add_argument(
            "--config", help="YAML file of config keys (overrides on the command line win)"
        )
        for flag, key in stage.shortcuts.items():
            p.add_argument(
                flag,
                dest="short_" + key.replace(".", "__"),
                metavar=key.split(".")[-1].upper(),
                help=f"same as {key}=VALUE",
            )
        if stage.name == "compare":
            p.add_argument("runs", nargs="*", help="eval run folders (each holds metrics.json)")
        if stage.name == "train":
            p.add_argument("--resume", action="store_true", help="same as resume=true")
        p.add_argument(
            "overrides",
            nargs="*",
            default=[],
            help="config overrides: key=value (dotted keys for sections)",
        )
    return parser, stages


def main(argv: list[str] | None = None) -> int:
    parser, stages = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "stage", None):
        if args.command == "data":
            parser.parse_args(["data", "--help"])
        parser.print_help()
        return 0
    stage = stages[args.stage]
    overrides = list(args.overrides)
    if stage.name == "compare":
        # positional run folders and key=value overrides share argv: split them by the "="
        runs = [a for a in args.runs if "=" not in a]
        overrides = [a for a in args.runs if "=" in a] + overrides
        if runs:
            overrides.append("runs=" + json.dumps(runs))
    for key in stage.shortcuts.values():
        value = getattr(args, "short_" + key.replace(".", "__"))
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    if getattr(args, "resume", False):
        overrides.append("resume=true")
    try:
        cfg: Any = load_config(stage.config(), args.config, overrides)
        result = stage.run(cfg)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"ragtune {stage.name}: error: {e}", file=sys.stderr)
        return 2
    stage.show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
