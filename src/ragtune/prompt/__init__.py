"""The grounded prompt, one copy for training and inference (a shared seam: imports no stage).

grounded.py  PromptConfig, build_messages(question, contexts, cfg), render_prompt, target
refusal.py   is_refusal: the configured refusal sentences and common paraphrases
encode.py    encode_example: token ids with answer-only labels (IGNORE_INDEX elsewhere)
fit.py       fit_passages: shorten passages from the end until a prompt fits its budget
"""
