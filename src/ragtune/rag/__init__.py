"""The RAG pipeline: index documents, retrieve (BM25, dense, hybrid, rerank; local files or
Qdrant), answer through the shared generation path with citations. Imports only the shared
seams (`example`, `text`, `prompt/`, `generation/`, `embed`) and infrastructure."""
