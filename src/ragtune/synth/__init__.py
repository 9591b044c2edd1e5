"""Training data from a user's own documents: rule-based QA from their structure, RAFT
examples with retrieved distractors. Imports the shared seams, `rag/` (reading and
chunking documents, BM25) and `data/` (the quality checks every data set passes)."""
