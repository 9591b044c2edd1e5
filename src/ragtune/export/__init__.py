"""`ragtune export`: a tuned model as files other runtimes load, verified before it is kept.

stage.py       the stage: ExportConfig, run(cfg) -> ExportResult; the output folder's layout
merge.py       base + LoRA merged in fp32 (peft); saved as bf16/fp16 safetensors
gguf_write.py  transformers weights + tokenizer -> GGUF (llama, qwen2), f16 or f32
gguf_lora.py   PEFT LoRA adapter -> llama.cpp LoRA GGUF (for `--lora`)
quantize.py    llama.cpp quantization (q8_0, q4_k_m, ...) through llama-cpp-python
modelfile.py   Ollama Modelfile: Go chat template, stops, parameters, grounded system prompt
card.py        the README.md model card: base, data, training config, eval table, how to run
verify.py      each GGUF in llama.cpp vs transformers: template, tokens, logits, answers
hub.py         push to the Hugging Face Hub

    from ragtune.export.stage import Config, run
    result = run(Config(model="smollm2-135m", adapter="runs/lora", to=["gguf"], out="x"))
"""

from ragtune.errors import RagtuneError


class ExportError(RagtuneError):
    """An export that cannot be written or fails verification; the message names the file."""
