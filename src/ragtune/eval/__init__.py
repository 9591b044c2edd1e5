"""`ragtune eval` and `ragtune compare`: answer a held-out set, score it, report it.

stage.py    the eval stage: EvalConfig, run, show; resumable predictions
answer.py   answer_all: questions + the passages to use -> answers (gold passages here; a
            retriever can supply them)
metrics.py  EM, F1, ROUGE-L, semantic similarity, grounding and refusal metrics
report.py   report.md and self-contained report.html
compare.py  `ragtune compare`: eval runs side by side with deltas
"""
