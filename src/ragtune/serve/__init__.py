"""`ragtune serve`: an OpenAI-compatible server over the shared generation path, with
several LoRA adapters on one base, a RAG mode over named indexes, dynamic batching, bounded
admission (429 beyond it) and a web page. Imports only the shared seams and `rag/`."""
