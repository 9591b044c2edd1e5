"""ragtune: fine-tune a small open LLM into a grounded answer generator for RAG.

Stages (each module exports `Config`, `run(config) -> result` and `show(result)`, and is
`ragtune <stage>` on the CLI): data check / data prepare (`ragtune.data.check`,
`ragtune.data.prepare`), train (`ragtune.train.stage`), eval (`ragtune.eval.stage`), compare
(`ragtune.eval.compare`), export (`ragtune.export.stage`) and demo (`ragtune.demo.stage`).
The shared seams they build on: `example`, `text`, `prompt/`, `generation/`, `embed`.
"""

__version__ = "0.1.0"
