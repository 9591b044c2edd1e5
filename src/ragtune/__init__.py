"""ragtune: fine-tune a small open LLM into a grounded answer generator for RAG.

Stages (each is `run(config) -> result` in its module and `ragtune <stage>` on the CLI):
data check / data prepare (`ragtune.data`), train (`ragtune.train`), eval (`ragtune.evaluate`),
compare (`ragtune.compare`) and demo (`ragtune.demo`).
"""

__version__ = "0.1.0"
