"""RAG benchmark: index the passages of the shared SQuAD 2.0 and CMRC 2018 samples, score
retrieval (BM25, dense, hybrid, +rerank), and optionally answer end to end.

Each passage becomes one Markdown file (`# title`, then the passage), indexed with `ragtune
index` settings; questions are a random sample of each set's questions (answerable and, for
SQuAD 2.0, unanswerable), each scored against its own passage (`eval.retrieval`). Printed
and written under --out: recall@1/5/20, MRR and nDCG@10 per setting and language, index
build time and size, and query latency p50/p95 (ms) per setting. With --e2e-model, the
given eval files are answered from retrieved passages (`ragtune eval --index`) by that model
with and without --adapter, beside the same model on gold passages.

    python benchmarks/rag_retrieval.py --out benchmarks/out/rag
    python benchmarks/rag_retrieval.py --out benchmarks/out/rag --e2e-model smollm2-135m \
        --adapter benchmarks/out/smollm2-v3/train --e2e-data benchmarks/out/smollm2-v3/data/eval_en.jsonl

Latency figures are valid only on a quiet machine (nothing else running); the CPU model is
recorded with them.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import time
from pathlib import Path

from ragtune import allocator, atomic, probe
from ragtune.data.importers import import_data
from ragtune.eval import retrieval
from ragtune.eval import stage as evaluate
from ragtune.eval.stage import EvalConfig
from ragtune.example import write_jsonl
from ragtune.generation.load import GenerateConfig
from ragtune.rag.index import IndexConfig, build
from ragtune.rag.settings import RetrievalSection

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_passages(examples: list, folder: Path) -> int:
    """One Markdown file per distinct passage, named by article and position."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    seen: dict[str, int] = {}
    for e in examples:
        for c in e.contexts:
            if c not in seen:
                seen[c] = len(seen)
                title = re.sub(r"[_\W]+", " ", e.group or "doc").strip() or "doc"
                (folder / f"p{seen[c]:05d}.md").write_text(f"# {title}\n\n{c}\n", encoding="utf-8")
    return len(seen)


def main() -> None:
    allocator.ensure()  # may re-execute the script on jemalloc, as the ragtune command does
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="benchmarks/out/rag")
    ap.add_argument("--squad", default=str(SHARED / "squad2_sample.json"))
    ap.add_argument("--cmrc", default=str(SHARED / "cmrc2018_sample.json"))
    ap.add_argument("--questions", type=int, default=500, help="questions sampled per language")
    ap.add_argument("--modes", default="bm25,dense,hybrid,hybrid+rerank")
    ap.add_argument(
        "--embedders", default="en=minilm,en=use-multilingual,zh=use-multilingual,zh=minilm"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--e2e-model", default=None, help="answer --e2e-data from retrieved passages")
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--e2e-data", default="", help="comma-separated eval files (canonical JSONL)")
    ap.add_argument(
        "--e2e-lang", default="", help="language of each e2e file (en,zh): picks its index"
    )
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument(
        "--refusal-threshold", default="auto", help="gen.refusal_threshold of the e2e runs"
    )
    ap.add_argument("--e2e-mode", default="hybrid")
    ap.add_argument(
        "--reuse", action="store_true", help="keep indexes and retrieval scores already in --out"
    )
    args = ap.parse_args()
    out = Path(args.out)
    old = out / "results.json"
    results: dict = {"cpu": probe.cpu_model_name(), "args": vars(args), "sets": {}}
    if args.reuse and old.is_file():
        results["sets"] = json.loads(old.read_text())["sets"]
    sets = {"en": args.squad, "zh": args.cmrc}
    indexes: dict[str, Path] = {}
    for pair in args.embedders.split(","):
        lang, embedder = pair.split("=")
        examples = import_data(sets[lang], skip_empty_questions=True).examples
        docs = out / f"docs_{lang}"
        # The same files with the same hashes each run: a reused index stays valid.
        n_passages = write_passages(examples, docs)
        qa = out / f"questions_{lang}.jsonl"
        write_jsonl(
            qa, random.Random(args.seed).sample(examples, min(args.questions, len(examples)))
        )
        folder = out / f"index_{lang}_{embedder}"
        indexes.setdefault(lang, folder)
        done = out / f"retrieval_{lang}_{embedder}" / "retrieval.json"
        if args.reuse and done.is_file() and (folder / "manifest.json").is_file():
            continue
        if folder.exists():
            shutil.rmtree(folder)
        t0 = time.perf_counter()
        report = build(
            IndexConfig(docs=[str(docs)], out=str(folder), embedder=embedder, threads=args.threads)
        )
        build_s = time.perf_counter() - t0
        cfg = retrieval.EvalRetrievalConfig(
            index=str(folder), data=str(qa), modes=args.modes.split(","), threads=args.threads,
            out=str(out / f"retrieval_{lang}_{embedder}"),
        )  # fmt: skip
        res = retrieval.run(cfg)
        results["sets"][f"{lang}/{embedder}"] = {
            "passages": n_passages, "chunks": report.chunks, "build_s": round(build_s, 1),
            "index_mb": round(report.bytes / 1e6, 2), "questions": res["scorable"], "modes": res["modes"],
        }  # fmt: skip
        print(f"\n{lang} / {embedder}: {n_passages} passages -> {report.chunks} chunks, "
              f"built in {build_s:.1f} s, {report.bytes / 1e6:.1f} MB; {res['scorable']} questions")  # fmt: skip
        print(res["markdown"])
    if args.e2e_model:
        if args.reuse and old.is_file():
            results["e2e"] = json.loads(old.read_text()).get("e2e", {})
        results.setdefault("e2e", {})
        langs = args.e2e_lang.split(",")
        for data, lang in zip(args.e2e_data.split(","), langs, strict=True):
            for label, adapter in (("base", None), ("tuned", args.adapter)):
                if label == "tuned" and not adapter:
                    continue
                for source in ("gold", "retrieved"):
                    run_dir = (
                        out / f"e2e_{Path(args.e2e_model).stem}_{Path(data).stem}_{label}_{source}"
                    )
                    gen = GenerateConfig(
                        model=args.e2e_model,
                        adapter=adapter,
                        max_new_tokens=32,
                        batch_size=8,
                        refusal_threshold=args.refusal_threshold,
                    )
                    m = evaluate.run(EvalConfig(
                        data=data, out=str(run_dir), gen=gen, latency_questions=0, semantic=False,
                        index=str(indexes[lang]) if source == "retrieved" else None,
                        retrieval=RetrievalSection(mode=args.e2e_mode, k=args.k),  # type: ignore[arg-type]
                    ))  # fmt: skip
                    keys = ["answerable_f1", "answerable_em", "f1", "refusal_accuracy", "false_refusal_rate",
                            "answer_in_context_rate", "hallucination_rate", "retrieval_miss_rate", "citation_accuracy"]  # fmt: skip
                    results["e2e"][run_dir.name] = {k: m.get(k) for k in keys}
                    print(run_dir.name, json.dumps(results["e2e"][run_dir.name]))
    atomic.write_json(out / "results.json", results)


if __name__ == "__main__":
    main()
