"""`ragtune train`: LoRA / QLoRA / full fine-tuning with loss on the answer only.

stage.py      the stage: run(TrainConfig) on the transformers Trainer; show()
config.py     TrainConfig, LoraSection, presets, resolve_defaults
model.py      build_model: base + LoRA (or full, or 4-bit QLoRA) from plain arguments
batches.py    encoded examples, padded and packed (no padding) batches
loss.py       answer-only loss: vocabulary projection at answer positions only
attention.py  CPU training attention: packed rows, matmul-softmax short, sdpa long
callbacks.py  progress bar (loss, tokens/s, ETA), loss-curve PNG, peak memory
"""
