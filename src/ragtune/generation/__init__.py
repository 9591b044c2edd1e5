"""Generation, the one path from chat messages to short answers (a shared seam: no stage imports).

base.py      Messages, Generation, the Generator protocol (no torch import)
local.py     LocalGenerator: batched greedy decoding with transformers (+ merged LoRA)
llamacpp.py  LlamaCppGenerator: the same on a GGUF file in llama.cpp
openai.py    OpenAIGenerator: any OpenAI-compatible endpoint, on the official client
load.py      GenerateConfig and load_generator: a model spec -> one of the above
"""
