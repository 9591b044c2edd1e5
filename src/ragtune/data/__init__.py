"""Data: the canonical QA example, importers for common formats, quality checks, and prepare.

examples = load_examples("train.json")           # any supported format, auto-detected
report = check.run(CheckConfig(data="train.json"))
result = prepare.run(PrepareConfig(data="train.json", out="data/"))
"""
