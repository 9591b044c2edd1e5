"""`ragtune demo`: the main job, offline, on a demo set this package generates.

stage.py         the stage: base eval -> LoRA fine-tune -> tuned eval -> before/after report
dataset.py       builds the demo set (answerable, unanswerable, counterfactual; en + zh)
templates_en.py  English fictional-entity templates (pure data)
templates_zh.py  Chinese fictional-entity templates (pure data)
facts.py         real-world facts with false values, for counterfactual documents (pure data)
"""
