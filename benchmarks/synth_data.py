"""Training data without gold QA, and fine-tune vs RAG vs both (issue 15).

Part 1, SQuAD 2.0 (shared sample), split by article as benchmarks/real_data.py splits it.
The same training passages (from training articles) give three training sets of equal size:
- plain: SQuAD's own questions on those passages (a third unanswerable), one passage each;
- raft: the same questions as RAFT examples (`ragtune data raft`: the passage plus three
  BM25 distractors from the training corpus, a share without it that must refuse);
- teacher: pairs written by the teacher from the raw passages (`ragtune data from-docs
  teacher=...`, no gold QA), plus unanswerables as `data prepare` makes them.
One student per set is fine-tuned the same way, and each, with the base model, is scored end
to end on held-out questions with retrieved passages (`ragtune eval --index` over an index
of every passage of the sample), with the teacher model as the LLM judge on the first
--judge answers.

Part 2, a small corpus this script generates: Markdown notes about invented products, so no
model knows the facts. `from-docs` (rules, no model) turns them into QA; a RAG adapter is
trained on their RAFT examples and a closed-book adapter on the QA itself; `ragtune advise`
scores base + RAG, tuned closed-book and tuned + RAG on questions worded differently from
the training ones (and some the notes do not answer), and recommends one.

The teacher and judge is Qwen2.5-Coder-1.5B behind llama.cpp's server (started here on
127.0.0.1; `pip install -e ".[bench]"`); the student Qwen2.5-Coder-0.5B.

    python benchmarks/synth_data.py --out benchmarks/out/synth \\
        --student ~/.cache/ragtune/models/qwen2.5-coder-0.5b-instruct.gguf \\
        --teacher ~/.cache/ragtune/models/qwen2.5-coder-1.5b-instruct.gguf

Every step keeps its output under --out and is skipped when it is there, so a killed run
resumes. Results go to --out/results.json and benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rag_retrieval import write_passages  # noqa: E402
from real_data import SHARED, sample, split  # noqa: E402
from serve_load import llama_server  # noqa: E402

from ragtune import allocator, atomic, probe, runs  # noqa: E402
from ragtune.data.augment import add_unanswerables  # noqa: E402
from ragtune.data.importers import import_data, load_examples  # noqa: E402
from ragtune.eval import advise  # noqa: E402
from ragtune.eval import stage as evaluate  # noqa: E402
from ragtune.eval.calibrate import CalibrateSection  # noqa: E402
from ragtune.eval.stage import EvalConfig  # noqa: E402
from ragtune.example import Example, write_jsonl  # noqa: E402
from ragtune.generation.load import GenerateConfig  # noqa: E402
from ragtune.prompt.grounded import PromptConfig  # noqa: E402
from ragtune.rag.index import IndexConfig, build  # noqa: E402
from ragtune.rag.settings import RetrievalSection  # noqa: E402
from ragtune.runtime import RuntimeSection  # noqa: E402
from ragtune.synth import from_docs, raft  # noqa: E402
from ragtune.train import stage as train  # noqa: E402
from ragtune.train.config import LoraSection, TrainConfig  # noqa: E402

COLUMNS = [
    "answerable_f1", "refusal_accuracy", "false_refusal_rate", "hallucination_rate",
    "citation_accuracy", "retrieval_miss_rate", "judge_faithfulness", "judge_correctness",
    "judge_style", "judge_scored", "judge_failures",
]  # fmt: skip


# --- part 2's corpus: invented products, one note each --------------------------------------
NAMES = ["Vela X2", "Corvid 7", "Tarn Mini", "Quillon Pro", "Ember S4", "Lumora 4", "Brask One",
         "Oriel Max", "Sabrel 9", "Kestra Air", "Nimbo Go", "Pallas K3", "Draven V", "Morrow Q1"]  # fmt: skip
KINDS = ["travel router", "desk lamp", "e-reader", "smart thermostat", "camera drone",
         "label printer", "espresso grinder", "hiking watch", "bike light", "air purifier",
         "label scanner", "sound bar", "rice cooker", "baby monitor"]  # fmt: skip
PEOPLE = ["Mira Okafor", "Tomas Varga", "Ines Holloway", "Kenji Arlow", "Dalia Brenner",
          "Oskar Lindqvist", "Priya Castellan", "Rafe Molina", "Sunniva Dahl", "Leon Achterberg",
          "Hana Petrov", "Arun Whitcombe", "Greta Solberg", "Emil Ferreira"]  # fmt: skip
CITIES = ["Tallinn", "Porto", "Leipzig", "Brno", "Gdansk", "Tampere", "Bilbao", "Ghent", "Aarhus",
          "Graz", "Turin", "Lyon", "Cork", "Malmo"]  # fmt: skip
YEARS = ["one year", "two years", "three years", "four years", "five years"]
# (sentence in the note, question a user would ask instead, gold answer); {n} is the name.
FACTS = [
    ("The {n} designer is {person}.", "Who designed the {n}?", "{person}"),
    ("The {n} price is ${price}.", "How much does the {n} cost?", "${price}"),
    ("The {n} weight is {grams} grams.", "How heavy is the {n}?", "{grams} grams"),
    ("The {n} release year is {year}.", "In which year did the {n} come out?", "{year}"),
    ("The {n} warranty is {warranty}.", "How long is the warranty on the {n}?", "{warranty}"),
    ("The {n} assembly city is {city}.", "In which city is the {n} assembled?", "{city}"),
]
MISSING = ["What colour is the {n}?", "What is the battery capacity of the {n}?",
           "Which app controls the {n}?", "How many units of the {n} were sold?"]  # fmt: skip


def write_notes(folder: Path, seed: int) -> list[Example]:
    """One Markdown note per product under folder; returns the questions users would ask
    (other wordings than the notes', and one per product the notes do not answer)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    people, cities = rng.sample(PEOPLE, len(NAMES)), rng.sample(CITIES, len(NAMES))
    questions: list[Example] = []
    for i, (name, kind) in enumerate(zip(NAMES, KINDS, strict=True)):
        v = {"n": name, "person": people[i], "city": cities[i], "price": rng.randrange(49, 990),
             "grams": rng.randrange(90, 2400, 5), "year": rng.randrange(2011, 2025),
             "warranty": rng.choice(YEARS)}  # fmt: skip
        facts = rng.sample(FACTS, len(FACTS))
        specs = " ".join(f[0].format(**v) for f in facts[:3])
        support = " ".join(f[0].format(**v) for f in facts[3:])
        a = "an" if kind[0] in "aeiou" else "a"
        note = (f"# {name}\n\nThe {name} is {a} {kind} made by Orrin Labs. {specs}\n\n"
                f"## Support\n\n{support}\n")  # fmt: skip
        path = folder / f"{name.lower().replace(' ', '-')}.md"
        atomic.write_text(path, note)
        for j, (_, q, a) in enumerate(FACTS):
            questions.append(
                Example(f"{i}-{j}", q.format(**v), [note], [a.format(**v)], True, path.name)
            )
        q = rng.choice(MISSING).format(**v)
        questions.append(Example(f"{i}-none", q, [note], [], False, path.name))
    return questions


def judge_agreement(predictions: Path) -> dict[str, float | None]:
    """How well the judge's correctness follows the metrics: its mean on answers that F1 says
    are right (F1 >= 0.5, refusals of unanswerable questions included) and on the rest. A
    judge that reads the answers gives the first clearly more."""

    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    judged = [r for r in rows if r.get("judge")]

    def mean(xs: list[int]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    right = [r["judge"]["correctness"] for r in judged if r["f1"] >= 0.5]
    wrong = [r["judge"]["correctness"] for r in judged if r["f1"] < 0.5]
    return {"correctness_when_right": mean(right), "correctness_when_wrong": mean(wrong),
            "right": len(right), "wrong": len(wrong)}  # fmt: skip


def main() -> None:
    allocator.ensure()  # may re-execute the script on jemalloc, as the ragtune command does
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--student", required=True, help="the student model (a GGUF file, a folder, an alias)"
    )
    ap.add_argument(
        "--teacher", required=True, help="the teacher and judge, a GGUF file for llama.cpp's server"
    )
    ap.add_argument("--out", default="benchmarks/out/synth")
    ap.add_argument("--squad", default=str(SHARED / "squad2_sample.json"))
    ap.add_argument(
        "--passages", type=int, default=80, help="training passages (from training articles)"
    )
    ap.add_argument("--train", type=int, default=240, help="examples per training set")
    ap.add_argument("--eval", type=int, default=80, help="held-out questions, half unanswerable")
    ap.add_argument("--judge", type=int, default=30, help="answers judged per model")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="1,2")
    args = ap.parse_args()  # fmt: skip
    out = Path(args.out)
    rt = RuntimeSection(threads=args.threads)
    saved = out / "results.json"  # one part at a time keeps the other part's results
    results: dict[str, Any] = json.loads(saved.read_text()) if saved.exists() else {}
    timings: dict[str, float] = results.get("timings", {})
    results |= {"cpu": probe.cpu_model_name(), "args": vars(args), "timings": timings}
    rng = random.Random(args.seed)

    def student(
        name: str, data: Path, epochs: float, eval_fraction: float = 0.1, **prompt: Any
    ) -> str:
        run_dir = out / f"train-{name}"
        if not runs.train_finished(run_dir):
            t0 = time.perf_counter()
            train.run(TrainConfig(
                data=str(data), model=args.student, out=str(run_dir), lora=LoraSection(r=16, alpha=32),
                lr=args.lr, epochs=epochs, batch_size=4, grad_accum=2, max_length=1024,
                refusal_loss_weight=0.5, eval_fraction=eval_fraction, seed=args.seed, runtime=rt,
                resume=True, prompt=PromptConfig(**prompt), calibrate=CalibrateSection(enabled=False),
            ))  # fmt: skip
            timings[f"train_{name}_s"] = round(time.perf_counter() - t0, 1)
        return str(run_dir)

    if "1" in args.parts:
        squad = import_data(args.squad, skip_empty_questions=True).examples
        tr, ev = split(squad, 0.2, args.seed)  # 10 articles -> 2 held out, as in real_data.py
        passages = sorted({e.contexts[0] for e in tr})
        chosen = set(rng.sample(passages, min(args.passages, len(passages))))
        gold = [e for e in tr if e.contexts[0] in chosen]
        data = out / "data"
        plain = sample(gold, args.train, 1 / 3, rng)
        rng.shuffle(plain)
        write_jsonl(data / "plain.jsonl", plain)
        evals = sample(ev, args.eval, 0.5, rng)
        rng.shuffle(evals)  # the judge scores the first --judge: a mix of both kinds
        write_jsonl(data / "eval.jsonl", evals)
        if not (data / "raft.jsonl").exists():
            raft.run(raft.RaftConfig(data=str(data / "plain.jsonl"), out=str(data / "raft.jsonl"),
                                     distractors=3, no_oracle_share=0.2, seed=args.seed))  # fmt: skip
        index = out / "index"
        if not (index / "manifest.json").exists():
            write_passages(squad, out / "corpus")  # every passage: held-out and training articles
            build(IndexConfig(docs=[str(out / "corpus")], out=str(index)))
        with llama_server(args.teacher, args.threads) as root:
            url = root + "/v1"
            teacher_file = data / "teacher_all.jsonl"
            docs = out / "train_docs"
            if not docs.exists():
                write_passages([e for e in gold if e.contexts[0] in chosen], docs)
            t0 = time.perf_counter()
            report = from_docs.run(from_docs.FromDocsConfig(
                docs=[str(docs)], out=str(teacher_file), teacher="openai:teacher",
                teacher_api_base=url, teacher_pairs=3, teacher_concurrency=1,
            ))  # fmt: skip
            timings["teacher_s"] = round(time.perf_counter() - t0, 1)
            results["teacher"] = report
            pairs = [e for e in load_examples(str(teacher_file)) if e.kind == "teacher"]
            rng.shuffle(pairs)
            pos = pairs[: round(args.train * 2 / 3)]
            taught = add_unanswerables(pos, 0.5, args.seed)[: args.train]
            rng.shuffle(taught)
            write_jsonl(data / "teacher.jsonl", taught)
            sets = {
                "plain": data / "plain.jsonl",
                "raft": data / "raft.jsonl",
                "teacher": data / "teacher.jsonl",
            }
            results["train_sizes"] = {k: len(load_examples(str(p))) for k, p in sets.items()}
            adapters: dict[str, str | None] = {"base": None}
            for name, path in sets.items():
                adapters[name] = student(name, path, epochs=1)
            table: dict[str, dict[str, Any]] = {}
            for name, adapter in adapters.items():
                run_dir = out / f"e2e-{name}"
                m = runs.finished(run_dir)
                if m is None:
                    t0 = time.perf_counter()
                    m = evaluate.run(EvalConfig(
                        data=str(data / "eval.jsonl"), out=str(run_dir), label=name, latency_questions=0,
                        semantic=False, runtime=rt, index=str(index), retrieval=RetrievalSection(k=4),
                        gen=GenerateConfig(model=args.student, adapter=adapter, max_new_tokens=32,
                                           batch_size=8, refusal_threshold="none"),
                        judge="openai:judge", judge_api_base=url, judge_max=args.judge,
                    ))  # fmt: skip
                    timings[f"e2e_{name}_s"] = round(time.perf_counter() - t0, 1)
                table[name] = {k: m.get(k) for k in COLUMNS}
                table[name]["judge_agreement"] = judge_agreement(run_dir / runs.PREDICTIONS)
        results["e2e"] = table
        print("\nend to end, retrieved passages (k=4, hybrid), held-out SQuAD articles")
        print(f"{'model':<10}" + "".join(f"{c[:14]:>16}" for c in COLUMNS))
        for name, row in table.items():
            cells = [f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS]
            print(f"{name:<10}" + "".join(f"{c:>16}" for c in cells))
        atomic.write_json(out / "results.json", results)

    if "2" in args.parts:
        notes = out / "notes"
        questions = write_notes(notes, args.seed)
        data = out / "notes-data"
        write_jsonl(data / "questions.jsonl", questions)
        qa = data / "notes.jsonl"
        results["from_docs"] = from_docs.run(
            from_docs.FromDocsConfig(docs=[str(notes)], out=str(qa))
        )
        raft.run(raft.RaftConfig(data=str(qa), out=str(data / "raft.jsonl"), distractors=3,
                                 no_oracle_share=0.2, seed=args.seed))  # fmt: skip
        # Closed-book must see every note's facts, so nothing is held out; RAG is scored on
        # notes it trained on too, which is what a team tuning on its own notes does.
        rag = student("notes-raft", data / "raft.jsonl", epochs=2, eval_fraction=0.0)
        closed = student("notes-closed", qa, epochs=8, eval_fraction=0.0, closed_book=True)
        t0 = time.perf_counter()
        advice = advise.run(advise.AdviseConfig(
            docs=[str(notes)], questions=str(data / "questions.jsonl"), out=str(out / "advise"),
            model=args.student, adapter=rag, closed_book_adapter=closed,
        ))  # fmt: skip
        timings["advise_s"] = round(time.perf_counter() - t0, 1)
        results["advise"] = advice
        print(advice["markdown"])
        atomic.write_json(out / "results.json", results)


if __name__ == "__main__":
    main()
