"""The `ragtune` command: one table of stages, each a module exporting Config, run and show.

Every stage takes `--config file.yaml` plus dotted `key=value` overrides (`lora.r=8`), a few
shortcut flags (`--model`, `--data`, ...) that set the same keys, and a positional argument
for what people type first (the data file, or the run folders to compare). `ragtune STAGE
--help` lists every config key with its default and its documentation, read from the config
dataclass, so the help can never drift from the code. A `RagtuneError` (bad input, config,
model or path) prints as one line and exits 2; `--debug` or RAGTUNE_DEBUG=1 keeps the
traceback. Anything else is a bug and keeps its traceback.

The stage modules keep torch and transformers imports inside `run`, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import textwrap
import typing
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ragtune import __version__
from ragtune.config import describe, load_config
from ragtune.data import check, prepare
from ragtune.data.importers import FORMAT_HELP
from ragtune.demo import stage as demo
from ragtune.errors import RagtuneError
from ragtune.eval import advise, calibrate, compare
from ragtune.eval import retrieval as eval_retrieval
from ragtune.eval import stage as evaluate
from ragtune.export import stage as export
from ragtune.rag import ask, index_stage
from ragtune.serve import stage as serve
from ragtune.synth import from_docs, raft
from ragtune.train import stage as train


@dataclass(frozen=True)
class Stage:
    name: str
    module: ModuleType
    """Exports Config (the dataclass), run(config) and show(result)."""
    summary: str
    flags: dict[str, str]
    """--flag -> the config key it sets."""
    positional: str | None = None
    """Config key that positional arguments set (a list key takes several); "a b" names
    two keys, filled in order (`ragtune ask INDEX QUESTION`)."""
    switches: tuple[str, ...] = ()
    """Boolean config keys that also get a --flag (--resume sets resume=true)."""


DATA, OUT, MODEL, FORMAT = "--data", "--out", "--model", "--format"
STAGES = [
    Stage("data check", check, "Quality report for a data file: counts, empties, duplicates, lengths, answers not in context, overlap.",
          {DATA: "data", FORMAT: "format", MODEL: "model", OUT: "out"}, "data"),
    Stage("data prepare", prepare, "Clean a data file and write train.jsonl / eval.jsonl split by article, so no context leaks.",
          {DATA: "data", FORMAT: "format", OUT: "out"}, "data"),
    Stage("data from-docs", from_docs, "QA examples from your documents' structure (headings, definitions, lists, code), checked and reported.",
          {OUT: "out"}, "docs"),
    Stage("data raft", raft, "RAFT examples: each question with its passage plus BM25-retrieved distractors; a share without the passage.",
          {DATA: "data", OUT: "out", FORMAT: "format", "--index": "index"}, "data"),
    Stage("train", train, "LoRA / QLoRA / full fine-tuning with loss on the answer only; eval loss, early stopping, resume.",
          {DATA: "data", "--eval-data": "eval_data", MODEL: "model", OUT: "out", "--preset": "preset", FORMAT: "format"}, "data", ("resume", "overwrite")),
    Stage("eval", evaluate, "Answer a held-out set with a model (+adapter, or an OpenAI-compatible API) and score it; writes a report.",
          {DATA: "data", MODEL: "gen.model", "--adapter": "gen.adapter", OUT: "out", "--label": "label", FORMAT: "format", "--index": "index"}, "data", ("overwrite",)),
    Stage("calibrate", calibrate, "Choose a tuned model's refusal threshold on held-out data (training does it too); eval, RAG and serving use it.",
          {DATA: "data", MODEL: "model", "--max-false-refusal": "calibrate.max_false_refusal"}, "run"),
    Stage("compare", compare, "Put eval runs side by side (base vs tuned vs API model): table, deltas, HTML chart.",
          {OUT: "out"}, "runs"),
    Stage("export", export, "Write a tuned model for other runtimes: merged safetensors, GGUF (quantized, LoRA), Ollama Modelfile; verified.",
          {MODEL: "model", "--adapter": "adapter", "--to": "to", OUT: "out", DATA: "data", "--push-to-hub": "push_to_hub"}),
    Stage("index", index_stage, "Index documents (Markdown, text, HTML, PDF) for RAG: chunks, BM25, embeddings; updates in place.",
          {OUT: "out"}, "docs"),
    Stage("ask", ask, "Answer a question from an index with citations: retrieve, prompt as in training, generate, cite.",
          {MODEL: "gen.model", "--adapter": "gen.adapter", "--mode": "retrieval.mode", "-k": "retrieval.k"}, "index question", ("json",)),
    Stage("eval-retrieval", eval_retrieval, "Retrieval quality on a QA file: recall@k, MRR, nDCG, latency for BM25 / dense / hybrid / +rerank.",
          {DATA: "data", OUT: "out", FORMAT: "format"}, "index"),
    Stage("serve", serve, "An OpenAI-compatible server: base + adapters on one model, RAG mode with citations, a web page.",
          {MODEL: "model", "--adapter": "adapters", "--index": "indexes", "--port": "port", "--host": "host", "--api-key": "api_key"}),
    Stage("advise", advise, "Fine-tune, RAG or both? Scores base + RAG, tuned closed-book and tuned + RAG on your corpus and says which.",
          {"--questions": "questions", MODEL: "model", "--adapter": "adapter", OUT: "out"}, "docs"),
    Stage("demo", demo, "The main job, offline: build a demo set, evaluate the base model, fine-tune, evaluate again, report.",
          {MODEL: "model", OUT: "out"}),
]  # fmt: skip

_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def _config_help(cls: type) -> str:
    lines = ["config keys (set in --config YAML or as key=value):"]
    for key, default, doc in describe(cls):
        lines.append(f"  {key} = {default}")
        lines.extend(f"      {chunk}" for chunk in textwrap.wrap(doc, 88))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    data = sub.add_parser(
        "data",
        help="Inspect, prepare and make data (check, prepare, from-docs, raft).",
        description=FORMAT_HELP,
    )
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    for stage in STAGES:
        target = data_sub if stage.name.startswith("data ") else sub
        p = target.add_parser(
            stage.name.split()[-1],
            help=stage.summary,
            description=stage.summary,
            epilog=_config_help(stage.module.Config),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(stage=stage)
        p.add_argument(
            "--config", help="YAML file of config keys (overrides on the command line win)"
        )
        for flag, key in stage.flags.items():
            many = "." not in key and _is_list_key(stage.module.Config, key)
            p.add_argument(
                flag,
                dest="flag:" + key,
                metavar=key.split(".")[-1].upper(),
                action="append" if many else "store",  # --adapter a=x --adapter b=y
                help=f"same as {key}=VALUE" + (" (repeatable)" if many else ""),
            )
        for switch in stage.switches:
            p.add_argument(f"--{switch}", action="store_true", help=f"same as {switch}=true")
        p.add_argument("--debug", action="store_true", help="show the traceback of an error")
        what = f"{stage.positional} (or key=value overrides)" if stage.positional else "key=value"
        p.add_argument("args", nargs="*", metavar="ARG", help=f"{what}; dotted keys for sections")
    return parser


def _keys(cls: type) -> list[str]:
    return [key for key, _, _ in describe(cls)]


def _is_list_key(cls: type, key: str) -> bool:
    tp = typing.get_type_hints(cls)[key]
    return typing.get_origin(tp) is list


def _stray(stage: Stage, arg: str, nxt: str | None) -> str:
    """The error for an argument that is neither the stage's positional nor key=value: it
    says which key or flag was probably meant."""
    keys = _keys(stage.module.Config)
    msg = f"unexpected argument {arg!r} (config keys are set as key=value)"
    key = arg.lstrip("-").replace("-", "_")
    if key in keys:
        return msg + f"; did you mean {key}={nxt if nxt is not None else 'VALUE'}?"
    if os.path.exists(arg) or "/" in arg or re.search(r"\.\w{2,6}$", arg):
        flags = ", ".join(stage.flags)
        return msg + (f"; pass a file or folder with its flag ({flags})" if flags else "")
    close = difflib.get_close_matches(key, keys, n=3)
    return msg + (f"; did you mean {' or '.join(c + '=...' for c in close)}?" if close else "")


def overrides_for(stage: Stage, args: argparse.Namespace) -> list[str]:
    """The stage's config overrides from positionals, key=value arguments and flags, in that
    order (a later one wins)."""
    overrides: list[str] = []
    positionals: list[str] = []
    keys = stage.positional.split() if stage.positional else []
    many = len(keys) == 1 and _is_list_key(stage.module.Config, keys[0])
    known = _keys(stage.module.Config)
    for i, a in enumerate(args.args):
        key = a.split("=", 1)[0]
        section = key.split(".", 1)[0]  # lora.rank: a typo in a known section is still a key
        is_key = key in known or any(k.split(".", 1)[0] == section for k in known if "." in k)
        wanted = bool(keys) and (many or len(positionals) < len(keys))
        if _OVERRIDE.match(a) and (is_key or not wanted):
            overrides.append(a)  # (an unknown key is still an override: load_config names it)
        elif wanted:
            positionals.append(a)
        else:
            nxt = args.args[i + 1] if i + 1 < len(args.args) else None
            raise RagtuneError(_stray(stage, a, nxt))
    if many:
        overrides.insert(0, f"{keys[0]}={json.dumps(positionals, ensure_ascii=False)}")
    else:
        for k, v in reversed(list(zip(keys, positionals))):
            overrides.insert(0, f"{k}={json.dumps(v, ensure_ascii=False)}")
    for flag_key in stage.flags.values():
        value = getattr(args, "flag:" + flag_key)
        if isinstance(value, list):  # a repeatable flag: each may also list several (a,b)
            value = [v.strip() for item in value for v in item.split(",") if v.strip()]
        if value is not None:
            overrides.append(f"{flag_key}={json.dumps(value, ensure_ascii=False)}")
    overrides += [f"{s}=true" for s in stage.switches if getattr(args, s)]
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Known-args parsing lets key=value and positional arguments come after flags too
    # (`ragtune data check squad.json --out r.md lr=3e-4`), which plain nargs="*" refuses.
    args, extra = parser.parse_known_args(argv)
    stage: Stage | None = getattr(args, "stage", None)
    flags = [i for i, x in enumerate(extra) if x.startswith("-")]
    if flags and stage is None:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if flags and stage is not None:  # `--lr 3e-4`: say which key was meant
        i = flags[0]
        nxt = extra[i + 1] if i + 1 < len(extra) else None
        print(f"ragtune {stage.name}: error: {_stray(stage, extra[i], nxt)}", file=sys.stderr)
        return 2
    if extra:
        args.args = [*getattr(args, "args", []), *extra]
    if stage is None:
        parser.parse_args([args.command, "--help"] if args.command else ["--help"])
        return 0
    debug = args.debug or os.environ.get("RAGTUNE_DEBUG") == "1"
    try:
        cfg: Any = load_config(stage.module.Config, args.config, overrides_for(stage, args))
        result = stage.module.run(cfg)
    except RagtuneError as e:
        if debug:
            raise
        print(f"ragtune {stage.name}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # The machine said no (permissions, a full disk, a path that is a file): the user's
        # to fix, so one line; a bug would rarely raise an OSError that names a file.
        if debug or e.filename is None:
            raise
        print(f"ragtune {stage.name}: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    stage.module.show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
